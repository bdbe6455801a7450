"""Dead channels go, outputs stay: trimming real architectures end to end.

For each model of the zoo (the project's builders and keras.applications networks with residual streams,
squeeze-and-excitation blocks and dense concatenations), the test

1. calibrates the random network so that no channel is dead by itself (then trimming at ``min_relevance=0``
   must remove nothing, which is checked);
2. kills a few channels of chosen groups by zeroing their producers' filters and every batch norm on their
   positions, so that every tensor of the group is exactly zero on those channels;
3. trims at ``min_relevance=0`` and checks that exactly the killed channels went, that the predictions did
   not change, and that the trimmed model saves, reloads, converts to full int8 and runs on TFLite Micro.

Each model is built, calibrated, killed and trimmed once (a module-scoped, parametrised fixture, so pytest
runs every test of one model before building the next).

Timing on a 2-core CPU (build, calibration and trims, predictions, save/load, int8 conversion and TFLM):
plain 4 s, resnet 9 s, mobilenetv2 15 s, MobileNetV2 26 s, MobileNetV3Small 35 s, EfficientNetB0 53 s,
ResNet50 59 s, DenseNet121 74 s; 4m40s in all, half of it in the int8 conversions (a SavedModel export and
calibration each). The five keras.applications models are marked ``slow`` (over 5 s each to build and
calibrate), and so is the int8 and TFLM test of resnet and mobilenetv2 (tests/trim/conftest.py marks those two
by id): ``-m "not slow"`` keeps plain, resnet and mobilenetv2, about 15 s. The slow ones are required all the
same: they are the residual, squeeze-and-excitation and concatenation graphs that trimming must handle.
"""

from dataclasses import dataclass

import keras
import numpy as np
import pytest

from tfscissor.models import build_model
from tfscissor.models.io import load_model, save_model
from tfscissor.quantize import quantize_int8
from tfscissor.trim import ChannelGraph, collect_statistics, find_groups, trim_model

INPUT_SHAPE = (32, 32, 3)
CLASSES = 5
BUILDERS = ("plain", "resnet", "mobilenetv2")
APPLICATION_OPTIONS = {"MobileNetV2": {"alpha": 0.35}}
ZOO = [
    *BUILDERS,
    pytest.param("MobileNetV2", marks=pytest.mark.slow),
    pytest.param("MobileNetV3Small", marks=pytest.mark.slow),
    pytest.param("ResNet50", marks=pytest.mark.slow),
    pytest.param("EfficientNetB0", marks=pytest.mark.slow),
    pytest.param("DenseNet121", marks=pytest.mark.slow),
]
TFLM_ARENA = 8 << 20  # generous: the largest of these models needs well under 1 MiB at 32x32


def build(name):
    """An untrained model of the zoo with reproducible weights and its standard softmax head."""
    if name in BUILDERS:
        return build_model(name, INPUT_SHAPE, CLASSES, seed=0)
    keras.utils.set_random_seed(0)
    application = getattr(keras.applications, name)
    return application(weights=None, input_shape=INPUT_SHAPE, classes=CLASSES, **APPLICATION_OPTIONS.get(name, {}))


def random_images(seed, count):
    return np.random.default_rng(seed).uniform(0, 255, (count, *INPUT_SHAPE)).astype(np.float32)


# --- making a random network fit for the test ---


def calibrate(model, images, rng):
    """Make every channel of a random network alive, so that only the channels the test kills are dead.

    Untrained networks have many dead channels: batch norm's moving statistics (mean 0, variance 1) are far
    from the data, so whole channels sit below a ReLU's threshold, and the squeeze-and-excitation convolutions
    of MobileNetV3 (no batch norm, a ReLU) have channels that never fire. One pass in training mode sets
    every batch norm's moving statistics to those of ``images`` (momentum 0), after a small positive shift
    (beta) so that a calibrated channel is positive more often than not. In the same pass, convolutions and
    dense layers with a bias and no batch norm after them are standardised the same way (output mean 0.5,
    standard deviation 1 on ``images``), which also keeps the softmax away from saturation so that comparing
    predictions means something.

    Channels killed by :func:`kill` stay dead (batch norms with gamma 0 keep beta 0, constant outputs are left
    alone), so calibrating again after killing revives the layers that only read killed channels: an SE
    squeeze conv that read them would otherwise lose channels of its own that no one killed.
    """
    graph = ChannelGraph(model)
    fed_to_batch_norm = {
        source
        for node in graph.nodes
        if isinstance(node.layer, keras.layers.BatchNormalization)
        for source in node.input_sources
    }
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    standardised = [
        layer
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
        and layer.use_bias
        and layer.name not in fed_to_batch_norm
    ]
    momenta = [layer.momentum for layer in batch_norms]
    for layer in batch_norms:
        gamma, beta, *moving = layer.get_weights()
        shift = np.where(gamma == 0, 0.0, rng.uniform(0.1, 0.5, beta.shape)).astype(beta.dtype)
        layer.set_weights([gamma, shift, *moving])
        layer.momentum = 0.0
    for layer in standardised:
        _standardise_on_call(layer)
    try:
        model(images, training=True)
    finally:
        for layer, momentum in zip(batch_norms, momenta, strict=True):
            layer.momentum = momentum
        for layer in standardised:
            del layer.call  # uncovers the class's own call


def _standardise_on_call(layer):
    """Wrap ``layer.call`` so that its next call rescales the kernel and shifts the bias (per output
    channel) to make the pre-activation output on that batch have mean 0.5 and standard deviation 1.
    A constant channel (a killed one) is left as it is."""
    original = layer.call
    ops = keras.ops

    def call(*args, **kwargs):
        activation, layer.activation = layer.activation, keras.activations.linear
        try:
            output = original(*args, **kwargs)
        finally:
            layer.activation = activation
        axes = tuple(range(len(output.shape) - 1))
        std = ops.std(output, axis=axes)
        alive = std > 1e-6
        mean = ops.where(alive, ops.mean(output, axis=axes), 0.0)
        scale = ops.where(alive, 1.0 / ops.maximum(std, 1e-6), 1.0)
        shift = ops.where(alive, 0.5, 0.0)
        layer.kernel.assign(layer.kernel * scale)
        layer.bias.assign((layer.bias - mean) * scale + shift)
        return activation((output - mean) * scale + shift)

    layer.call = call


def kill(model, graph, group, channels):
    """Make group ``channels`` exactly zero in every tensor of the group.

    Zeroing the producers' filters is not enough: a batch norm after a producer adds its shift back. So every
    batch norm whose output positions carry one of the channels (a residual stream's, a concatenation's,
    found through the dependency graph ``graph``, not through the group under test) gets gamma = beta = 0
    there. What follows a zero channel keeps it zero (ReLU, swish, hard-swish, pooling, an Add of zeros, a
    Multiply by a squeeze-and-excitation gate).
    """
    for member in group.producers:
        layer = model.get_layer(member.layer)
        weights = layer.get_weights()
        positions = member.positions[np.isin(member.channels, channels)]
        kernel = 1 if isinstance(layer, keras.layers.SeparableConv2D) else 0  # the pointwise kernel
        weights[kernel][..., positions] = 0
        if layer.use_bias:
            weights[kernel + 1][positions] = 0
        layer.set_weights(weights)
    killed_roots = group.roots[channels]
    for node in graph.nodes:
        if isinstance(node.layer, keras.layers.BatchNormalization):
            positions = np.flatnonzero(np.isin(graph.roots(node.outputs[0]), killed_roots))
            if len(positions):
                gamma, beta, *moving = node.layer.get_weights()
                gamma[positions] = 0
                beta[positions] = 0
                node.layer.set_weights([gamma, beta, *moving])


def groups_to_kill(groups):
    """The first group, the most coupled one (most producers: a residual stream or an SE block) and one in
    the middle, each with three channels killed (first, middle, last)."""
    chosen = [groups[0]]
    coupled = max((g for g in groups if g not in chosen), key=lambda g: len(g.producers))
    chosen.append(coupled)
    middle = [g for g in groups[len(groups) // 2 :] if g not in chosen][0]
    chosen.append(middle)
    return {g.name: np.unique([0, g.channels // 2, g.channels - 1]) for g in chosen}


def removed(result, name):
    return np.setdiff1d(np.arange(result.channels[name]), result.kept[name])


def statistics(model, groups, images):
    taps = sorted({tap.layer for group in groups for tap in group.taps})
    return collect_statistics(model, images, taps, batch_size=16)


# --- the fixture: one model, calibrated, killed and trimmed ---


@dataclass
class Case:
    name: str
    model: object  # calibrated, with the channels in ``killed`` dead
    groups: list
    killed: dict  # group name -> killed channel indices
    baseline: object  # TrimResult at min_relevance=0 of the calibrated model before killing
    baseline_predictions: np.ndarray
    result: object  # TrimResult at min_relevance=0 of ``model``
    images: np.ndarray  # a batch unseen by the calibration and the statistics


@pytest.fixture(scope="module", params=ZOO)
def case(request):
    name = request.param
    model = build(name)
    calibrate(model, random_images(1, 32), np.random.default_rng(1))
    graph = ChannelGraph(model)
    groups = find_groups(model)
    statistics_images, images = random_images(2, 16), random_images(3, 8)
    baseline = trim_model(model, statistics(model, groups, statistics_images), min_relevance=0.0)
    baseline_predictions = model.predict(images, verbose=0)
    killed = groups_to_kill(groups)
    by_name = {g.name: g for g in groups}
    for group_name, channels in killed.items():
        kill(model, graph, by_name[group_name], channels)
    calibrate(model, random_images(1, 32), np.random.default_rng(1))
    result = trim_model(model, statistics(model, groups, statistics_images), min_relevance=0.0)
    return Case(name, model, groups, killed, baseline, baseline_predictions, result, images)


# --- the tests ---


def test_calibrated_model_has_no_dead_channels(case):
    # What makes the other tests meaningful: every channel the trim removes below was killed by the test.
    assert {name: removed(case.baseline, name).tolist() for name in case.baseline.kept} == {
        name: [] for name in case.baseline.kept
    }
    # Predictions vary and are not saturated, so comparing them can show a change.
    assert case.baseline_predictions.max() < 0.999
    assert np.ptp(case.baseline_predictions, axis=0).max() > 0.01


def test_exactly_the_killed_channels_go(case):
    assert len(case.killed) == 3
    assert {name: removed(case.result, name).tolist() for name in case.result.kept} == {
        group.name: case.killed.get(group.name, np.array([], int)).tolist() for group in case.groups
    }
    # The rebuilt layers really are narrower: each producer lost its share of the killed channels.
    by_name = {g.name: g for g in case.groups}
    for group_name, channels in case.killed.items():
        for member in by_name[group_name].producers:
            before = case.model.get_layer(member.layer).output.shape[-1]
            after = case.result.model.get_layer(member.layer).output.shape[-1]
            assert after == before - np.isin(member.channels, channels).sum(), member.layer
    assert case.result.model.count_params() < case.model.count_params()


def test_outputs_stay(case):
    expected = case.model.predict(case.images, verbose=0)
    actual = case.result.model.predict(case.images, verbose=0)
    assert actual.shape == expected.shape == (len(case.images), CLASSES)
    assert np.abs(actual - expected).max() < 1e-4


def test_trimmed_model_saves_converts_and_runs_on_tflite_micro(case, tmp_path):
    from tflite_micro import runtime

    trimmed = case.result.model
    path = tmp_path / f"{case.name}.keras"
    save_model(trimmed, path)
    reloaded = load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(case.images, verbose=0), trimmed.predict(case.images, verbose=0), atol=1e-6
    )

    tflite = quantize_int8(trimmed, random_images(4, 16), num_samples=16)
    interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=TFLM_ARENA)
    details = interpreter.get_input_details(0)
    assert details["dtype"] == np.int8 and tuple(details["shape"]) == (1, *INPUT_SHAPE)
    (scale,), (zero_point,) = (
        details["quantization_parameters"]["scales"],
        details["quantization_parameters"]["zero_points"],
    )
    image = case.images[:1]
    quantized = np.clip(np.round(image / scale) + zero_point, -128, 127).astype(np.int8)
    interpreter.set_input(quantized, 0)
    interpreter.invoke()
    output = np.array(interpreter.get_output(0))
    assert output.dtype == np.int8 and output.shape == (1, CLASSES)
    out = interpreter.get_output_details(0)["quantization_parameters"]
    probabilities = (output.astype(np.float32) - out["zero_points"][0]) * out["scales"][0]
    # The int8 softmax still sums to one, and is near the float model's.
    assert abs(probabilities.sum() - 1.0) < 0.05
    assert np.abs(probabilities - trimmed.predict(image, verbose=0)).max() < 0.25


# --- structure: independent facts about each architecture's groups ---


def _group_of(groups, layer):
    (group,) = [g for g in groups if layer in [m.layer for m in g.producers]]
    return group


def _producers(groups, layer):
    return {m.layer for m in _group_of(groups, layer).producers}


def _taps(groups, layer):
    return {t.layer: t for t in _group_of(groups, layer).taps}


def _plain(groups):
    assert [g.name for g in groups] == ["stage1_conv1_conv", "stage2_conv1_conv", "stage3_conv1_conv"]
    assert set(_taps(groups, "stage3_conv1_conv")) == {"stage3_conv1_relu"}


def _resnet(groups):
    # The stem writes the stage-1 residual stream, which both stage-1 blocks add to.
    assert _producers(groups, "stem_conv") == {"stem_conv", "stage1_block1_2_conv", "stage1_block2_2_conv"}
    assert _producers(groups, "stage2_block1_proj_conv") == {
        "stage2_block1_proj_conv",
        "stage2_block1_2_conv",
        "stage2_block2_2_conv",
    }
    # A block's inner conv is its own group.
    assert _producers(groups, "stage1_block1_1_conv") == {"stage1_block1_1_conv"}


def _mobilenetv2_builder(groups):
    # The first block has no expansion: the stem's channels go through its depthwise conv and are read there.
    assert set(_taps(groups, "stem_conv")) == {"stage1_block1_dw_relu"}
    # A stage's linear bottleneck is one stream: every block projects into it, each later block's Add is read.
    assert _producers(groups, "stage3_block1_project_conv") == {f"stage3_block{b}_project_conv" for b in (1, 2, 3)}
    assert set(_taps(groups, "stage3_block1_project_conv")) == {
        "stage3_block1_project_bn",
        "stage3_block2_add",
        "stage3_block3_add",
    }


def _keras_mobilenetv2(groups):
    # block_2 adds its projection to block_1's; block_3 (stride 2) starts a new stream.
    assert _producers(groups, "block_1_project") == {"block_1_project", "block_2_project"}
    assert _producers(groups, "block_3_project") == {"block_3_project", "block_4_project", "block_5_project"}
    # The expansion, depthwise and batch norms of a block are one group made by the expansion alone.
    group = _group_of(groups, "block_1_expand")
    assert {"block_1_depthwise", "block_1_depthwise_BN", "block_1_project"} <= set(group.layers)


def _mobilenetv3(groups):
    # The first block's SE gate multiplies the stem's channels: the excitation conv makes the same channels.
    assert _producers(groups, "conv") == {"conv", "expanded_conv_squeeze_excite_conv_1"}
    assert _producers(groups, "expanded_conv_3_project") == {
        "expanded_conv_3_project",
        "expanded_conv_4_project",
        "expanded_conv_5_project",
    }


def _resnet50(groups):
    assert _producers(groups, "conv2_block1_0_conv") == {
        "conv2_block1_0_conv",
        "conv2_block1_3_conv",
        "conv2_block2_3_conv",
        "conv2_block3_3_conv",
    }
    assert len(_group_of(groups, "conv3_block1_0_conv").producers) == 5
    assert _group_of(groups, "conv3_block1_0_conv").channels == 512


def _efficientnet(groups):
    group = _group_of(groups, "block2a_expand_conv")
    assert "block2a_se_expand" in {m.layer for m in group.producers}
    assert {"block2a_dwconv", "block2a_se_excite", "block2a_project_conv"} <= set(group.layers)
    # The squeeze conv makes channels of its own, read by the expand conv.
    assert set(_taps(groups, "block2a_se_reduce")) == {"block2a_se_reduce"}


def _densenet(groups):
    # conv1's 64 channels come first in every concatenation of dense block 1, and are read there by each
    # block's first batch norm; the transition reads them too.
    taps = _taps(groups, "conv1_conv")
    assert {f"conv2_block{b}_0_relu" for b in range(1, 7)} | {"pool2_relu"} <= set(taps)
    for tap in taps.values():
        if tap.layer.startswith("conv2_"):
            np.testing.assert_array_equal(tap.positions, np.arange(64))
            np.testing.assert_array_equal(tap.channels, np.arange(64))
    # Block 1's 32 new channels follow them: positions 64..95 wherever they are read.
    taps = _taps(groups, "conv2_block1_2_conv")
    assert set(taps) == {f"conv2_block{b}_0_relu" for b in range(2, 7)} | {"pool2_relu"}
    for tap in taps.values():
        np.testing.assert_array_equal(tap.positions, np.arange(64, 96))
        np.testing.assert_array_equal(tap.channels, np.arange(32))


STRUCTURE = {
    "plain": _plain,
    "resnet": _resnet,
    "mobilenetv2": _mobilenetv2_builder,
    "MobileNetV2": _keras_mobilenetv2,
    "MobileNetV3Small": _mobilenetv3,
    "ResNet50": _resnet50,
    "EfficientNetB0": _efficientnet,
    "DenseNet121": _densenet,
}


def test_group_structure(case):
    STRUCTURE[case.name](case.groups)
    for group in case.groups:
        # Every group channel is made by some producer, at positions within the producer's output.
        made = np.concatenate([m.channels for m in group.producers])
        np.testing.assert_array_equal(np.unique(made), np.arange(group.channels))
        for member in (*group.producers, *group.taps):
            width = case.model.get_layer(member.layer).output.shape[-1]
            assert len(np.unique(member.positions)) == len(member.positions) and member.positions.max() < width
