import numpy as np
import pytest

from tfscissor.errors import ModelError, UsageError
from tfscissor.models import build_model, builder_names

SHAPE = (32, 32, 3)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("plain", {}),
        ("plain", {"convs_per_stage": 2, "dropout": 0.2}),
        ("resnet", {}),
        ("resnet", {"block": "bottleneck", "blocks": (1, 1), "widths": (8, 16)}),
        ("mobilenetv2", {}),
        ("mobilenetv2", {"alpha": 0.5}),
    ],
)
def test_builders_make_classifiers_of_raw_pixels(name, kwargs):
    model = build_model(name, SHAPE, 7, **kwargs)
    assert model.input_shape == (None, *SHAPE)
    assert model.output_shape == (None, 7)
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)
    scores = model.predict(np.full((2, *SHAPE), 255.0, np.float32), verbose=0)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_layer_names_expose_stage_and_block():
    names = {layer.name for layer in build_model("resnet", SHAPE, 3, blocks=(2, 1), widths=(8, 16)).layers}
    assert {"stage1_block1_add", "stage1_block2_add", "stage2_block1_add", "stage2_block1_proj_conv"} <= names
    # Identity shortcuts (no projection) where shapes allow: those blocks are removable later.
    assert "stage1_block2_proj_conv" not in names
    names = {layer.name for layer in build_model("mobilenetv2", SHAPE, 3).layers}
    assert {"stage2_block2_add", "stage2_block1_expand_conv", "stage1_block1_dw_conv", "head_conv"} <= names


def test_bottleneck_widens_by_four():
    model = build_model("resnet", SHAPE, 3, block="bottleneck", blocks=(1,), widths=(8,))
    assert model.get_layer("stage1_block1_3_conv").filters == 32
    assert model.get_layer("stage1_block1_2_conv").filters == 8


def test_mobilenetv2_widths_are_multiples_of_eight():
    model = build_model("mobilenetv2", SHAPE, 3, alpha=0.35)
    widths = [layer.filters for layer in model.layers if hasattr(layer, "filters")]
    assert all(w % 8 == 0 for w in widths)


@pytest.mark.slow
def test_keras_applications_by_name_with_user_weights(tmp_path):
    first = build_model("MobileNetV2", (32, 32, 3), 5)
    path = tmp_path / "w.weights.h5"
    first.save_weights(path)
    second = build_model("MobileNetV2", (32, 32, 3), 5, weights=str(path))
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(first.predict(x, verbose=0), second.predict(x, verbose=0), atol=1e-6)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        build_model("MobileNetV2", (32, 32, 3), 5, weights=str(tmp_path / "nope.weights.h5"))


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "plain.weights.h5"
    build_model("plain", (32, 32, 3), 5).save_weights(path)
    with pytest.raises(ModelError, match="cannot load weights"):
        build_model("MobileNetV2", (32, 32, 3), 5, weights=str(path))


def test_unknown_model_lists_builders():
    with pytest.raises(UsageError, match="plain") as err:
        build_model("resnet9000", SHAPE, 3)
    assert set(builder_names()) >= {"plain", "resnet", "mobilenetv2"}
    assert "keras.applications" in str(err.value)


def test_resnet_argument_errors():
    with pytest.raises(UsageError, match="unknown block"):
        build_model("resnet", SHAPE, 3, block="wide")
    with pytest.raises(UsageError, match="one entry per stage"):
        build_model("resnet", SHAPE, 3, blocks=(1, 1), widths=(8,))


@pytest.mark.parametrize("name", ["plain", "resnet", "mobilenetv2"])
def test_batch_norm_settles_quickly(name):
    import keras

    model = build_model(name, SHAPE, 3)
    momenta = {layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}
