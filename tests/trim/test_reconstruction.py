"""Least-squares reconstruction after surgery: a removed channel that the kept ones can predict costs nothing."""

import keras
import numpy as np
import pytest

from tfscissor.trim import ChannelGraph, SurgeryPlan, rebuild, reconstruction
from tfscissor.trim.groups import groups_of
from tfscissor.trim.reconstruction import reconstruct
from tfscissor.trim.stage import run_trim


def _with_a_predictable_channel(model, layer_name, offset=0.3):
    """Make output channel 3 of ``layer_name`` (a linear layer) 0.5 * channel 0 - channel 1 + ``offset`` exactly."""
    layer = model.get_layer(layer_name)
    kernel, bias = layer.get_weights()
    kernel[..., 3] = 0.5 * kernel[..., 0] - kernel[..., 1]
    bias[3] = 0.5 * bias[0] - bias[1] + offset
    layer.set_weights([kernel, bias])
    return model


def _keep_all_but(model, name, removed):
    groups = groups_of(ChannelGraph(model))
    return {
        group.name: np.setdiff1d(np.arange(group.channels), removed if group.name == name else []) for group in groups
    }


def _assert_refit_keeps_the_outputs(model, kept, refit, inputs):
    """The refit model's outputs are the untrimmed model's, up to the ridge penalty's small shrinkage
    (``reconstruction.RIDGE``); dropping the channel alone (zeros in its place) is 50 times further off."""
    before = model.predict(inputs, verbose=0)
    graph = ChannelGraph(model)
    sliced = rebuild(graph, SurgeryPlan.keeping(groups_of(graph), kept))
    error = np.abs(refit.predict(inputs, verbose=0) - before).max()
    assert error < 0.02 * np.abs(sliced.predict(inputs, verbose=0) - before).max()
    assert error < 0.01 * np.abs(before).max()


def _conv_model():
    """A linear convolution whose channels feed a convolution without a bias, read by a batch norm alone."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 10, 2))
    x = keras.layers.Conv2D(4, 1, name="mix")(inputs)
    x = keras.layers.Conv2D(3, 3, use_bias=False, name="conv")(x)  # "valid": no zero padding to predict
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(x))
    bn = model.get_layer("bn")
    bn.set_weights([np.full(3, 1.5), np.full(3, 0.2), np.array([0.1, -0.2, 0.3]), np.full(3, 2.0)])
    return _with_a_predictable_channel(model, "mix")


def test_a_convolution_that_loses_a_predictable_input_is_refit_to_the_same_outputs():
    model = _conv_model()
    images = np.random.default_rng(0).normal(size=(64, 10, 10, 2)).astype(np.float32)
    kept = _keep_all_but(model, "mix", [3])
    refit = reconstruct(model, kept, images)
    assert refit.get_layer("mix").filters == 3
    # The intercept (the +0.3) went into the batch norm's moving mean: the layer still has no bias.
    assert not refit.get_layer("conv").use_bias
    _assert_refit_keeps_the_outputs(model, kept, refit, images)
    assert model.get_layer("mix").filters == 4  # the input model is never changed


def test_removing_a_dead_channel_stays_exact():
    """The refit's ridge would shrink the weights a little; where the rebuild is already exact it is kept."""
    model = _conv_model()
    mix = model.get_layer("mix")
    kernel, bias = mix.get_weights()
    kernel[..., 3], bias[3] = 0.0, 0.0
    mix.set_weights([kernel, bias])
    images = np.random.default_rng(0).normal(size=(64, 10, 10, 2)).astype(np.float32)
    refit = reconstruct(model, _keep_all_but(model, "mix", [3]), images)
    np.testing.assert_allclose(refit.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_a_strided_zero_padded_convolution_of_a_sequential_model_is_refit_chunk_by_chunk(monkeypatch):
    """Without an offset the predicted channel is zero where the others are zero-padded, so the refit holds at
    the border too; the convolution's bias takes the intercept and its ReLU stays on top of the fit. Chunks
    small enough to split the images give the same fit."""
    keras.utils.set_random_seed(1)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((9, 9, 2)),
            layers.Conv2D(4, 1, name="mix"),
            layers.Conv2D(3, 3, strides=2, padding="same", activation="relu", name="conv"),
            layers.GlobalAveragePooling2D(name="pool"),
            layers.Dense(2, name="head"),
        ]
    )
    model = _with_a_predictable_channel(model, "mix", offset=0.0)
    images = np.random.default_rng(2).normal(size=(48, 9, 9, 2)).astype(np.float32)
    kept = _keep_all_but(model, "mix", [3])
    whole = reconstruct(model, kept, images)
    _assert_refit_keeps_the_outputs(model, kept, whole, images)
    monkeypatch.setattr(reconstruction, "_CHUNK_VALUES", 2000)  # a few images per chunk
    chunked = reconstruct(model, kept, images)
    for a, b in zip(whole.get_weights(), chunked.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_dense_layer_that_loses_a_predictable_input_is_refit_with_its_bias():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    x = keras.layers.Dense(4, name="mix")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))  # fit on its logits
    model = _with_a_predictable_channel(model, "mix")
    features = np.random.default_rng(1).normal(size=(200, 5)).astype(np.float32)
    kept = _keep_all_but(model, "mix", [3])
    _assert_refit_keeps_the_outputs(model, kept, reconstruct(model, kept, features), features)


@pytest.mark.slow
def test_reconstruction_refits_weights_and_never_changes_what_is_removed(trained_plain, tiny_data):
    from tfscissor.models import load_model
    from tfscissor.models.training import evaluate_classifier

    def run(refit):
        return run_trim(
            load_model(trained_plain), tiny_data, target_macs=0.5, steps=2, samples=64, seed=1, reconstruct=refit
        )

    plain, refit = run(False), run(None)  # with no fine-tuning, the stage refits by default
    assert refit.report["reconstruct"] and not plain.report["reconstruct"]
    assert refit.report["layers"] == plain.report["layers"]
    assert refit.report["macs_after"] == plain.report["macs_after"]
    assert refit.report["accuracy_trimmed"] == evaluate_classifier(refit.model, tiny_data.val)
    # On images it never saw, the refit model's outputs are closer to the untrimmed model's.
    images = tiny_data.val.images
    untrimmed = load_model(trained_plain).predict(images, verbose=0)
    distance = [np.mean((result.model.predict(images, verbose=0) - untrimmed) ** 2) for result in (plain, refit)]
    assert distance[1] < distance[0], distance


def test_a_layer_with_more_weights_than_input_rows_keeps_the_rebuilt_ones():
    """Ten images cannot tell forty inputs apart: a fit would reproduce those ten whatever the head does."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((20,))
    x = keras.layers.Dense(40, name="mix")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    kept = _keep_all_but(model, "mix", [3])
    refit = reconstruct(model, kept, np.random.default_rng(3).normal(size=(10, 20)).astype(np.float32))
    kernel, bias = model.get_layer("head").get_weights()
    np.testing.assert_array_equal(refit.get_layer("head").get_weights()[0], np.delete(kernel, 3, axis=0))
    np.testing.assert_array_equal(refit.get_layer("head").get_weights()[1], bias)
