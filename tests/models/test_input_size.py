"""with_input_size: a copy of a convolutional classifier at another square input size, weights kept."""

import numpy as np
import pytest

from tfscissor.errors import ModelError
from tfscissor.models import build_model
from tfscissor.models.graph import with_input_size

BUILDERS = {
    "resnet": {"blocks": (1, 1), "widths": (8, 16)},
    "mobilenetv2": {"stages": ((1, 8, 1, 1), (4, 8, 2, 2)), "stem_width": 8, "head_width": 16},
    "plain": {"widths": (8, 16)},
}


def images(size, count=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def weights_of(model):
    return {weight.path: np.array(weight) for weight in model.weights}


def assert_same_weights(a, b):
    a, b = weights_of(a) if not isinstance(a, dict) else a, weights_of(b) if not isinstance(b, dict) else b
    assert sorted(a) == sorted(b)
    for path in a:
        np.testing.assert_array_equal(a[path], b[path], err_msg=path)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_moved_model_keeps_weights_and_moves_back_exactly(name):
    model = build_model(name, (32, 32, 3), 5, seed=0, **BUILDERS[name])
    # Non-trivial batch-norm statistics, so that copying them matters.
    for layer in model.layers:
        if "bn" in layer.name and layer.weights:
            gamma, beta, mean, variance = layer.get_weights()
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([gamma * 1.5, beta + 0.1, mean + rng.normal(0, 0.1, mean.shape), variance * 2])
    before = weights_of(model)
    expected = model.predict(images(32), verbose=0)

    moved = with_input_size(model, 48)
    assert moved is not model
    assert moved.input_shape == (None, 48, 48, 3) and moved.output_shape == (None, 5)
    scores = moved.predict(images(48), verbose=0)
    assert scores.shape == (4, 5) and np.isfinite(scores).all()
    assert_same_weights(model, moved)  # the same variables' values, path by path

    back = with_input_size(moved, 32)
    assert back.input_shape == (None, 32, 32, 3)
    np.testing.assert_array_equal(back.predict(images(32), verbose=0), expected)

    # The original is unchanged: same input, same weights, same outputs.
    assert model.input_shape == (None, 32, 32, 3)
    assert_same_weights(before, model)
    np.testing.assert_array_equal(model.predict(images(32), verbose=0), expected)


def test_moved_model_is_independent_of_the_original():
    model = build_model("resnet", (32, 32, 3), 3, seed=0, **BUILDERS["resnet"])
    moved = with_input_size(model, 32)
    before = weights_of(model)
    for weight in moved.weights:
        weight.assign(np.zeros(weight.shape, weight.dtype))
    assert_same_weights(before, model)


def test_size_may_be_a_height_width_pair():
    model = build_model("plain", (32, 32, 3), 3, seed=0, **BUILDERS["plain"])
    moved = with_input_size(model, (24, 40))
    assert moved.input_shape == (None, 24, 40, 3)
    assert moved.predict(np.zeros((1, 24, 40, 3), np.float32), verbose=0).shape == (1, 3)


def test_moved_model_computes_the_same_function_at_the_new_size():
    # A pointwise network with global pooling sees an image tiled 2x2 as the image itself: the same scores.
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 1, activation="relu", name="mix")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x), name="pointwise")
    moved = with_input_size(model, 16)
    small = images(8, count=2)
    tiled = np.tile(small, (1, 2, 2, 1))
    np.testing.assert_allclose(moved.predict(tiled, verbose=0), model.predict(small, verbose=0), rtol=1e-5)


def test_flatten_dense_model_raises_model_error_naming_the_layer():
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="features")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="flat_head")
    before = weights_of(model)
    with pytest.raises(ModelError, match=r"model flat_head cannot take 32x32 images: layer 'logits' is sized"):
        with_input_size(model, 32)
    assert model.input_shape == (None, 16, 16, 3)
    assert_same_weights(before, model)


def test_fixed_reshape_raises_model_error():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Reshape((192,), name="fixed")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(x), name="reshaped")
    with pytest.raises(ModelError, match="model reshaped cannot take 16x16 images"):
        with_input_size(model, 16)
