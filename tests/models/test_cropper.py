"""The cropper: its outputs, its cost next to the classifier it serves, and its int8 ops."""

import numpy as np
import pytest

from tfscissor.crop.sizing import BYTES_ESTIMATE_ERROR, BYTES_SHARE, MACS_SHARE, estimated_int8_bytes, fitted_cropper
from tfscissor.errors import UsageError
from tfscissor.models.cropper import build_cropper, default_view

WIDTHS = (1.0, 0.75, 0.5, 0.375, 0.25)  # the widths fitted_cropper tries, widest first (its docstring)


def macs(model):
    from tfscissor.analysis import profile_model

    return profile_model(model).macs


def stem_width(model):
    return model.get_layer("stem_conv").filters


@pytest.mark.parametrize("shape, view", [((64, 64, 3), None), ((32, 32, 1), None), ((64, 96, 3), 32)])
def test_build_cropper_outputs_boxes_in_the_unit_square(shape, view):
    model = build_cropper(shape, view=view, width=0.5, seed=0)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, 4)
    rng = np.random.default_rng(0)
    images = np.concatenate([rng.uniform(0, 255, (5, *shape)), np.zeros((1, *shape)), np.full((1, *shape), 255)])
    boxes = model.predict(images.astype(np.float32), verbose=0)
    assert boxes.shape == (7, 4)
    assert np.isfinite(boxes).all() and (boxes >= 0).all() and (boxes <= 1).all()


def test_build_cropper_is_reproducible_for_a_seed():
    first = build_cropper((32, 32, 3), width=0.25, seed=3).get_weights()
    again = build_cropper((32, 32, 3), width=0.25, seed=3).get_weights()
    other = build_cropper((32, 32, 3), width=0.25, seed=4).get_weights()
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    "side, view", [(32, 32), (48, 48), (64, 64), (95, 95), (96, 48), (100, 50), (150, 50), (200, 50)]
)
def test_default_view_keeps_at_least_48_pixels(side, view):
    assert default_view(side) == view


def test_view_is_an_average_pooling_inside_the_model():
    model = build_cropper((96, 96, 3), width=0.25, seed=0)  # default view 48: 2x2 pooling
    assert model.get_layer("view").pool_size == (2, 2)
    assert "view" not in {layer.name for layer in build_cropper((64, 64, 3), width=0.25).layers}
    coarse = build_cropper((64, 64, 3), view=16, width=0.25)
    assert coarse.get_layer("view").pool_size == (4, 4)
    assert macs(coarse) < macs(build_cropper((64, 64, 3), width=0.25))


@pytest.mark.parametrize(
    "shape, view", [((64, 64, 3), 48), ((64, 64, 3), 6), ((64, 64, 3), 128), ((64, 96, 3), 48), ((60, 60, 3), 16)]
)
def test_view_that_does_not_fit_the_image_raises_usage_error(shape, view):
    with pytest.raises(UsageError, match=f"cropper view {view} does not fit {shape[0]}x{shape[1]} images"):
        build_cropper(shape, view=view)
    with pytest.raises(UsageError, match=f"cropper view {view}"):
        fitted_cropper(shape, view=view)


@pytest.mark.parametrize("options", [{"stages": 0}, {"stages": 5}, {"blocks": 0}, {"width": 0}, {"width": -1}])
def test_bad_cropper_options_raise_usage_error(options):
    with pytest.raises(UsageError, match="cropper"):
        build_cropper((32, 32, 3), **options)


def test_default_head_pools_straight_to_the_box():
    model = build_cropper((64, 64, 3), width=0.5, seed=0)
    names = [layer.name for layer in model.layers]
    assert "fc" not in names and names[-2:] == ["pool", "box"]
    assert model.get_layer("box").count_params() == 4 * (64 * 4 * 0.5 + 1)  # the last stage's 128 channels
    # The paper's head (a hidden layer of 64 units at width 1) is one argument away, and costs flash.
    paper = build_cropper((64, 64, 3), width=0.5, hidden=64, seed=0)
    assert paper.get_layer("fc").units == 32 and paper.get_layer("fc").input.shape[-1] == 128
    assert estimated_int8_bytes(paper) > estimated_int8_bytes(model)
    with pytest.raises(UsageError, match="cropper hidden units must be 0"):
        build_cropper((64, 64, 3), hidden=-1)


def bytes_held(model_or_bytes):
    """What a bytes budget must be to hold a cropper: its estimate with the estimate's largest error to spare."""
    estimate = model_or_bytes if isinstance(model_or_bytes, int) else estimated_int8_bytes(model_or_bytes)
    return estimate * (1 + BYTES_ESTIMATE_ERROR)


def _classifier_budget(classifier, resolution):
    from tfscissor.models.graph import with_input_size

    return MACS_SHARE * macs(with_input_size(classifier, resolution)), BYTES_SHARE * estimated_int8_bytes(classifier)


def _depth(cropper):
    blocks = [x.name for x in cropper.layers if x.name.endswith("_add")]
    return {"blocks": sum(n.startswith("stage1_") for n in blocks), "stages": len({n.split("_")[0] for n in blocks})}


@pytest.mark.parametrize(
    "shape, classifier_options, resolution",
    [
        ((32, 32, 3), {}, 32),
        ((64, 64, 3), {}, 32),
        # Issue 19: the old default for this classifier (5% of its MACs at 64 px) was twice its flash.
        pytest.param((64, 64, 3), {"widths": (16, 32, 64), "blocks": (1, 1, 1)}, 32, marks=pytest.mark.slow),
        ((96, 96, 3), {"blocks": (2, 2, 2), "stem_stride": 2}, 48),
    ],
)
def test_default_cropper_fits_a_tenth_of_the_classifier_macs_and_half_its_bytes(shape, classifier_options, resolution):
    from tfscissor.models import build_model

    assert (MACS_SHARE, BYTES_SHARE) == (0.10, 0.50)
    classifier = build_model("resnet", shape, 10, seed=0, **classifier_options)
    max_macs, max_bytes = _classifier_budget(classifier, resolution)
    cropper = fitted_cropper(shape, max_macs, seed=0, max_bytes=max_bytes)
    assert macs(cropper) <= max_macs, f"cropper {macs(cropper):,} MACs, budget {max_macs:,.0f}"
    assert bytes_held(cropper) <= max_bytes, f"cropper {estimated_int8_bytes(cropper):,} bytes"
    assert cropper.output_shape == (None, 4)
    # It is the first candidate that fits: the next wider one of the same depth and view is over the budget.
    chosen = [w for w in WIDTHS if max(4, round(16 * w)) == stem_width(cropper)][0]
    if chosen != WIDTHS[0]:
        wider = WIDTHS[WIDTHS.index(chosen) - 1]
        view_pool = cropper.get_layer("view").pool_size[0] if "view" in {x.name for x in cropper.layers} else 1
        other = build_cropper(shape, view=shape[0] // view_pool, width=wider, **_depth(cropper))
        assert macs(other) > max_macs or bytes_held(other) > max_bytes


@pytest.mark.slow
def test_bytes_bound_cropper_is_made_shallower_not_coarser():
    # Against issue 19's classifier at 32 px the bytes bind: even width 0.25 at four stages of two blocks is over
    # half the classifier's bytes, and a coarser view would save MACs only. The last stage goes first.
    from tfscissor.models import build_model

    classifier = build_model("resnet", (64, 64, 3), 10, widths=(16, 32, 64), blocks=(1, 1, 1), seed=0)
    max_macs, max_bytes = _classifier_budget(classifier, 32)
    assert estimated_int8_bytes(build_cropper((64, 64, 3), width=0.25)) > max_bytes
    cropper = fitted_cropper((64, 64, 3), max_macs, seed=0, max_bytes=max_bytes)
    assert _depth(cropper) == {"blocks": 2, "stages": 3} and stem_width(cropper) == 6  # width 0.375
    assert "view" not in {x.name for x in cropper.layers}  # the full 64-pixel view is kept
    wider = build_cropper((64, 64, 3), width=0.5, stages=3)
    assert bytes_held(wider) > max_bytes  # the next wider one of this depth is over the bytes


def test_fitted_cropper_without_a_budget_is_the_full_default():
    cropper = fitted_cropper((32, 32, 3), seed=0)
    assert stem_width(cropper) == 16
    assert macs(cropper) == macs(build_cropper((32, 32, 3)))


def test_fitted_cropper_narrows_then_coarsens_the_view():
    small = {"blocks": 1, "stages": 2}  # options reach build_cropper; a small model keeps the search quick
    narrowest = macs(build_cropper((64, 64, 3), width=0.25, **small))
    # Just below the narrowest cropper at the full view: the view must become coarser (32).
    cropper = fitted_cropper((64, 64, 3), narrowest - 1, seed=0, **small)
    assert cropper.get_layer("view").pool_size == (2, 2)
    assert macs(cropper) <= narrowest - 1
    # At the coarser view the widths are tried again from 1.0: the widest that fits is chosen.
    fits = [w for w in WIDTHS if macs(build_cropper((64, 64, 3), view=32, width=w, **small)) <= narrowest - 1]
    assert stem_width(cropper) == max(4, round(16 * fits[0]))
    assert len([x for x in cropper.layers if x.name.endswith("_add")]) == 2  # 2 stages of 1 block
    # A fixed width is never narrowed.
    fixed = fitted_cropper((64, 64, 3), narrowest - 1, width=0.25, **small)
    assert stem_width(fixed) == 4 and fixed.get_layer("view").pool_size == (2, 2)


def test_fitted_cropper_states_the_smallest_reachable_macs():
    # 32-pixel images: views 32 and 16, widths 1 down to 0.25; the smallest is view 16 at width 0.25.
    small = {"blocks": 1, "stages": 1}
    smallest = macs(build_cropper((32, 32, 3), view=16, width=0.25, **small))
    with pytest.raises(UsageError, match="no cropper for 32-pixel images fits 1,000 MACs") as error:
        fitted_cropper((32, 32, 3), 1000, **small)
    assert f"the smallest tried needs {smallest:,} MACs and " in str(error.value)
    # A budget of exactly that much is reachable.
    assert macs(fitted_cropper((32, 32, 3), smallest, width=0.25, **small)) == smallest


def test_fitted_cropper_states_the_smallest_reachable_bytes():
    small = {"blocks": 1, "stages": 2}
    smallest = estimated_int8_bytes(build_cropper((32, 32, 3), width=0.25, **small))
    with pytest.raises(UsageError, match="no cropper for 32-pixel images fits 5,000 int8 bytes") as error:
        fitted_cropper((32, 32, 3), max_bytes=5000, **small)
    assert f"(the smallest tried needs {smallest:,} bytes)" in str(error.value)  # no MACs counted: none fit the bytes
    assert estimated_int8_bytes(fitted_cropper((32, 32, 3), max_bytes=bytes_held(smallest), **small)) == smallest


def _randomised(model, seed=0):
    """``model`` with random weights and batch-norm statistics, as after training: the converter stores
    identical buffers (an untrained model's zero biases) once, so initial weights would give a smaller file."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else rng.normal(0, 0.1, w.shape)
                    for i, w in enumerate(weights)
                ]
            )
        elif weights:
            layer.set_weights([rng.normal(0, 0.1, w.shape) for w in weights])
    return model


@pytest.mark.slow
@pytest.mark.parametrize(
    "builder, shape, options",
    [
        ("cropper", (64, 64, 3), {"width": 0.5}),
        ("cropper", (32, 32, 3), {"width": 0.25, "blocks": 1, "stages": 2}),
        ("resnet", (32, 32, 3), {"widths": (16, 32, 64), "blocks": (1, 1, 1)}),
    ],
)
def test_estimated_int8_bytes_is_within_3_percent_of_the_int8_file(builder, shape, options):
    from tfscissor.models import build_model
    from tfscissor.quantize import quantize_int8

    built = build_cropper(shape, **options) if builder == "cropper" else build_model(builder, shape, 10, **options)
    model = _randomised(built)
    images = np.random.default_rng(0).uniform(0, 255, (16, *model.input_shape[1:])).astype(np.float32)
    real = len(quantize_int8(model, images, num_samples=16))
    assert abs(estimated_int8_bytes(model) / real - 1) <= 0.03, (estimated_int8_bytes(model), real)


EDGE_TPU_AND_TFLM_OPS = {
    "ADD",
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "LOGISTIC",
    "MEAN",
    "QUANTIZE",
    "RESHAPE",
}


@pytest.mark.slow
def test_int8_cropper_uses_only_edge_tpu_and_tflm_ops():
    from tfscissor.compile.tflm_ops import RESOLVER_METHODS
    from tfscissor.deploy.flatbuffer import read_model
    from tfscissor.quantize import quantize_int8

    # The default view of 48 pixels: a 2x2 AVERAGE_POOL_2D. Width and depth change no op, only the conversion time.
    cropper = build_cropper((96, 96, 3), width=0.25, blocks=1, seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (16, 96, 96, 3)).astype(np.float32)
    info = read_model(quantize_int8(cropper, images, num_samples=16))
    assert set(info.op_counts) <= EDGE_TPU_AND_TFLM_OPS, info.op_counts
    assert set(info.op_counts) <= set(RESOLVER_METHODS)  # every op has a TFLM kernel
    assert info.op_counts["AVERAGE_POOL_2D"] == 1
    assert {"CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "LOGISTIC"} <= set(info.op_counts)
    assert info.fully_int8, info.non_int8_tensors


def test_fitted_cropper_for_images_under_16_pixels():
    cropper = fitted_cropper((12, 12, 3), seed=0)  # build_cropper((12, 12, 3)) itself works: view 12 >= 8
    assert cropper.output_shape == (None, 4)


@pytest.mark.parametrize("shape, view", [((97, 97, 3), 97), ((100, 99, 3), 99), ((100, 60, 3), 60)])
def test_fitted_cropper_for_sizes_with_few_common_divisors(shape, view):
    cropper = fitted_cropper(shape, seed=0)
    assert default_view(shape[0], shape[1]) == view
    assert cropper.input_shape[1:] == shape and "view" not in {layer.name for layer in cropper.layers}
