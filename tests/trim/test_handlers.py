"""Each layer handler on a tiny functional model: which channels it ties, pins or carries, and how it slices.

Most tests kill channels (zero filters, so the channels are exactly zero in every tensor that carries them),
trim at ``min_relevance=0`` and check that exactly those channels went, that the rebuilt layers have the
right shapes and weights, and that the outputs did not change. The models use tanh or linear activations
where nothing is killed, so that no channel is dead by chance.
"""

import keras
import numpy as np
import pytest

from tfscissor.analysis import profile_model
from tfscissor.errors import ModelError, UsageError
from tfscissor.trim import Carrier, ChannelStatistics, find_groups, register_handler, trim_classifier, trim_model
from tfscissor.trim import handlers as handlers_module

SHAPE = (16, 16, 3)
CLASSES = 3


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(8, *SHAPE)).astype(np.float32)


def conv(filters, name, activation="tanh", kernel_size=3, **kwargs):
    return keras.layers.Conv2D(filters, kernel_size, padding="same", activation=activation, name=name, **kwargs)


def classifier(inputs, x, name="model"):
    """Global pooling and a dense head: the output's classes are pinned, everything before is trimmable."""
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="head")(x), name=name)


def zero_filters(model, layer_name, positions, weight=0):
    """Zero output ``positions`` of a layer's kernel (weight ``weight``: 1 for the pointwise kernel of a
    separable conv) and of its bias, so that those output channels are exactly zero."""
    layer = model.get_layer(layer_name)
    weights = layer.get_weights()
    weights[weight][..., positions] = 0
    if len(weights) > weight + 1:
        weights[weight + 1][..., positions] = 0
    layer.set_weights(weights)


def trim_dead(model, x, **options):
    """Trim at ``min_relevance=0`` with statistics measured on ``x``: removes exactly the channels that are
    zero wherever they are read."""
    return trim_classifier(model, x, min_relevance=0.0, batch_size=len(x), **options)


def removed(result):
    """Group name -> removed channel indices, for the groups that lost any."""
    gone = {name: np.setdiff1d(np.arange(result.channels[name]), kept) for name, kept in result.kept.items()}
    return {name: channels.tolist() for name, channels in gone.items() if len(channels)}


def assert_same_outputs(model, trimmed, x, atol=1e-5):
    expected, actual = np.asarray(model(x)), np.asarray(trimmed(x))
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=atol)


def producers(groups):
    return {g.name: sorted(m.layer for m in g.producers) for g in groups}


# --- Concatenate ---


def test_concatenate_along_channels_slices_the_consumer_at_offsets(x):
    inputs = keras.Input(SHAPE)
    a = conv(4, "a")(inputs)
    b = conv(6, "b")(inputs)
    y = keras.layers.Concatenate(name="concat")([a, b])
    model = classifier(inputs, conv(5, "c")(y))
    groups = {g.name: g for g in find_groups(model)}
    # Side by side: a's channels at positions 0..3 of the concatenation, b's at 4..9.
    (tap_a,) = groups["a"].taps
    (tap_b,) = groups["b"].taps
    assert tap_a.layer == tap_b.layer == "concat"
    np.testing.assert_array_equal(tap_a.positions, np.arange(4))
    np.testing.assert_array_equal(tap_b.positions, np.arange(4, 10))
    np.testing.assert_array_equal(tap_b.channels, np.arange(6))

    zero_filters(model, "a", [1])
    zero_filters(model, "b", [0, 4])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [1], "b": [0, 4]}
    kept_positions = [0, 2, 3, 4 + 1, 4 + 2, 4 + 3, 4 + 5]
    np.testing.assert_array_equal(
        result.model.get_layer("c").get_weights()[0], model.get_layer("c").get_weights()[0][:, :, kept_positions]
    )
    assert result.model.get_layer("concat").output.shape[-1] == 7
    assert_same_outputs(model, result.model, x)


def test_concatenate_along_another_axis_ties_the_inputs(x):
    inputs = keras.Input(SHAPE)
    y = keras.layers.Concatenate(axis=1, name="concat")([conv(4, "a")(inputs), conv(4, "b")(inputs)])
    model = classifier(inputs, conv(5, "c")(y))
    assert producers(find_groups(model))["a"] == ["a", "b"]
    zero_filters(model, "a", [2])
    zero_filters(model, "b", [2])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [2]}
    assert result.model.get_layer("concat").output.shape[1:] == (32, 16, 3)
    assert_same_outputs(model, result.model, x)


# --- Flatten and Reshape ---


def test_flatten_before_dense_removes_one_row_per_position_of_each_channel(x):
    inputs = keras.Input(SHAPE)
    y = conv(4, "a")(keras.layers.MaxPooling2D(4)(inputs))  # 4x4x4
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, name="head")(keras.layers.Flatten(name="flat")(y)))
    zero_filters(model, "a", [2])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [2]}
    kernel = model.get_layer("head").get_weights()[0]
    rows = np.arange(64) % 4 != 2  # Flatten puts the channel last: row r holds channel r % 4
    np.testing.assert_array_equal(result.model.get_layer("head").get_weights()[0], kernel[rows])
    assert_same_outputs(model, result.model, x)


def _reshaped(target_shape):
    inputs = keras.Input((4, 4, 3))
    y = keras.layers.Reshape(target_shape, name="reshape")(conv(4, "a")(inputs))
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="head")(keras.layers.Flatten(name="flat")(y)))


def test_reshape_with_whole_channel_columns_is_trimmed():
    # (4, 4, 4) -> (4, 16): position j of the last axis holds channel j % 4 in every row.
    model = _reshaped((4, 16))
    zero_filters(model, "a", [3])
    images = np.random.default_rng(1).normal(size=(4, 4, 4, 3)).astype(np.float32)
    result = trim_dead(model, images)
    assert removed(result) == {"a": [3]}
    assert result.model.get_layer("reshape").get_config()["target_shape"] == (4, 12)
    assert_same_outputs(model, result.model, images)


def test_reshape_that_mixes_channels_pins_them():
    # (4, 4, 4) -> (32, 2): position 0 of the last axis holds channels 0 and 2, position 1 channels 1 and 3.
    assert find_groups(_reshaped((32, 2))) == []


def test_squeeze_and_excitation_with_reshape(x):
    inputs = keras.Input(SHAPE)
    y = conv(8, "a")(inputs)
    s = keras.layers.GlobalAveragePooling2D(name="squeeze_pool")(y)
    s = keras.layers.Reshape((1, 1, 8), name="squeeze_reshape")(s)
    s = conv(4, "se_reduce", activation="swish", kernel_size=1)(s)
    s = conv(8, "se_expand", activation="sigmoid", kernel_size=1)(s)
    y = keras.layers.Multiply(name="excite")([y, s])
    model = classifier(inputs, conv(5, "b")(y))
    assert producers(find_groups(model))["a"] == ["a", "se_expand"]

    zero_filters(model, "a", [1, 6])  # sigmoid(0) = 0.5 in se_expand, times a's zero
    result = trim_dead(model, x)
    assert removed(result) == {"a": [1, 6]}
    trimmed = result.model
    assert trimmed.get_layer("squeeze_reshape").get_config()["target_shape"] == (1, 1, 6)
    assert trimmed.get_layer("se_reduce").get_weights()[0].shape == (1, 1, 6, 4)
    assert trimmed.get_layer("se_expand").get_weights()[0].shape == (1, 1, 4, 6)
    assert_same_outputs(model, trimmed, x)


# --- separable, depthwise and grouped convolutions ---


@pytest.mark.parametrize("multiplier", [1, 2])
def test_separable_conv(x, multiplier):
    inputs = keras.Input(SHAPE)
    y = conv(6, "a")(inputs)
    y = keras.layers.SeparableConv2D(5, 3, padding="same", depth_multiplier=multiplier, activation="tanh", name="sep")(
        y
    )
    model = classifier(inputs, y)
    zero_filters(model, "a", [1, 4])
    zero_filters(model, "sep", [2], weight=1)  # the pointwise kernel makes its channels
    result = trim_dead(model, x)
    assert removed(result) == {"a": [1, 4], "sep": [2]}
    depthwise, pointwise, bias = model.get_layer("sep").get_weights()
    new_depthwise, new_pointwise, new_bias = result.model.get_layer("sep").get_weights()
    inputs_kept = [0, 2, 3, 5]
    middle = [c * multiplier + k for c in inputs_kept for k in range(multiplier)]
    np.testing.assert_array_equal(new_depthwise, depthwise[:, :, inputs_kept])
    np.testing.assert_array_equal(new_pointwise, pointwise[:, :, middle][..., [0, 1, 3, 4]])
    np.testing.assert_array_equal(new_bias, bias[[0, 1, 3, 4]])
    assert_same_outputs(model, result.model, x)


def test_depthwise_conv_with_multiplier_removes_every_output_of_a_removed_input(x):
    inputs = keras.Input(SHAPE)
    y = conv(4, "a")(inputs)
    y = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="tanh", name="dw")(y)
    model = classifier(inputs, conv(5, "b")(y))
    (group,) = [g for g in find_groups(model) if g.name == "a"]
    (tap,) = group.taps
    assert tap.layer == "dw"
    np.testing.assert_array_equal(tap.channels, [0, 0, 1, 1, 2, 2, 3, 3])  # output c * 2 + k from input c

    zero_filters(model, "a", [1])
    zero_filters(model, "dw", [2, 3], weight=1)  # the bias of the depthwise outputs of input 1
    result = trim_dead(model, x)
    assert removed(result) == {"a": [1]}
    dw = result.model.get_layer("dw")
    assert dw.get_weights()[0].shape == (3, 3, 3, 2) and dw.output.shape[-1] == 6
    np.testing.assert_array_equal(
        result.model.get_layer("b").get_weights()[0], model.get_layer("b").get_weights()[0][:, :, [0, 1, 4, 5, 6, 7]]
    )
    assert_same_outputs(model, result.model, x)


def test_grouped_conv_keeps_its_channels(x):
    inputs = keras.Input(SHAPE)
    y = conv(8, "a")(inputs)
    y = conv(8, "grouped", groups=2)(y)
    model = classifier(inputs, conv(5, "b")(y))
    names = [g.name for g in find_groups(model)]
    assert "a" not in names and "grouped" not in names and "b" in names
    zero_filters(model, "a", [1])  # dead, yet it must stay: each group of the grouped conv keeps 4 inputs
    result = trim_dead(model, x)
    assert removed(result) == {}
    trimmed = result.model
    assert trimmed.get_layer("a").filters == 8 and trimmed.get_layer("grouped").filters == 8
    assert trimmed.get_layer("grouped").groups == 2
    assert_same_outputs(model, trimmed, x)
    # Even a ratio leaves them alone and the model runs.
    by_ratio = trim_classifier(model, x, ratio=0.5)
    assert by_ratio.model.get_layer("grouped").get_weights()[0].shape == (3, 3, 4, 8)
    assert by_ratio.model(x).shape == (len(x), CLASSES)


def test_grouped_conv_with_one_channel_per_group_is_trimmed_like_a_depthwise_conv(x):
    inputs = keras.Input(SHAPE)
    y = conv(8, "a")(inputs)
    y = conv(8, "grouped", groups=8)(y)
    model = classifier(inputs, conv(5, "b")(y))
    zero_filters(model, "a", [1, 5])
    zero_filters(model, "grouped", [1, 5])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [1, 5]}
    grouped = result.model.get_layer("grouped")
    assert grouped.filters == grouped.groups == 6
    kept = [0, 2, 3, 4, 6, 7]
    np.testing.assert_array_equal(grouped.get_weights()[0], model.get_layer("grouped").get_weights()[0][..., kept])
    assert_same_outputs(model, result.model, x)


# --- carriers with per-channel weights ---


def test_layer_normalization_is_trimmed_with_its_channels(x):
    inputs = keras.Input(SHAPE)
    y = conv(6, "a", activation=None)(inputs)
    y = keras.layers.LayerNormalization(name="norm")(y)
    model = classifier(inputs, conv(5, "b")(keras.layers.Activation("tanh")(y)))
    norm = model.get_layer("norm")
    gamma, beta = np.linspace(0.5, 1.5, 6, dtype=np.float32), np.linspace(-0.2, 0.3, 6, dtype=np.float32)
    norm.set_weights([gamma, beta])
    assert producers(find_groups(model))["a"] == ["a"]
    result = trim_model(model, ChannelStatistics(), criterion="l1", ratio=0.3)
    kept = result.kept["a"]
    assert len(kept) < 6
    new_gamma, new_beta = result.model.get_layer("norm").get_weights()
    np.testing.assert_array_equal(new_gamma, gamma[kept])
    np.testing.assert_array_equal(new_beta, beta[kept])
    assert result.model(x).shape == (len(x), CLASSES)


def test_layer_normalization_over_the_spatial_axes_pins_the_channels():
    inputs = keras.Input(SHAPE)
    y = keras.layers.LayerNormalization(axis=(1, 2), name="norm")(conv(6, "a")(inputs))
    model = classifier(inputs, conv(5, "b")(y))
    assert [g.name for g in find_groups(model)] == ["b"]


@pytest.mark.parametrize("shared_axes", [None, [1, 2]])
def test_prelu(x, shared_axes):
    inputs = keras.Input(SHAPE)
    y = conv(6, "a", activation=None)(inputs)
    prelu = keras.layers.PReLU(shared_axes=shared_axes, name="prelu")
    model = classifier(inputs, conv(5, "b")(prelu(y)))
    (alpha,) = prelu.get_weights()
    prelu.set_weights([np.random.default_rng(1).uniform(0.1, 0.3, alpha.shape)])
    zero_filters(model, "a", [0, 3])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [0, 3]}
    (new_alpha,) = result.model.get_layer("prelu").get_weights()
    np.testing.assert_array_equal(new_alpha, prelu.get_weights()[0][..., [1, 2, 4, 5]])
    assert_same_outputs(model, result.model, x)


# --- merges ---


@pytest.mark.parametrize("merge", [keras.layers.Subtract, keras.layers.Maximum, keras.layers.Average])
def test_element_wise_merge_ties_its_inputs(x, merge):
    inputs = keras.Input(SHAPE)
    y = merge(name="merge")([conv(4, "a")(inputs), conv(4, "b")(inputs)])
    model = classifier(inputs, conv(5, "c")(y))
    assert producers(find_groups(model)) == {"a": ["a", "b"], "c": ["c"]}
    zero_filters(model, "a", [1])
    zero_filters(model, "b", [1])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [1]}
    assert result.model.get_layer("a").filters == result.model.get_layer("b").filters == 3
    assert_same_outputs(model, result.model, x)


def test_merged_channel_dead_in_one_input_only_stays(x):
    inputs = keras.Input(SHAPE)
    y = keras.layers.Add(name="merge")([conv(4, "a")(inputs), conv(4, "b")(inputs)])
    model = classifier(inputs, conv(5, "c")(y))
    zero_filters(model, "a", [1])  # b still fills channel 1 of the sum
    assert removed(trim_dead(model, x)) == {}


def test_multiply_by_a_one_channel_mask_broadcasts(x):
    inputs = keras.Input(SHAPE)
    features = conv(6, "a")(inputs)
    mask = conv(1, "mask", activation="sigmoid", kernel_size=1)(inputs)
    model = classifier(inputs, conv(5, "b")(keras.layers.Multiply(name="masked")([features, mask])))
    groups = producers(find_groups(model))
    assert groups["a"] == ["a"] and "mask" not in groups  # the mask's one channel is pinned
    zero_filters(model, "a", [3])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [3]}
    assert result.model.get_layer("mask").filters == 1
    assert_same_outputs(model, result.model, x)


# --- nested models ---


def _inner_sequential():
    return keras.Sequential([keras.Input((16, 16, 4)), conv(6, "inner_conv"), conv(5, "inner_out")], name="inner")


def _inner_functional():
    inputs = keras.Input((16, 16, 4))
    return keras.Model(inputs, conv(5, "inner_out")(conv(6, "inner_conv")(inputs)), name="inner")


@pytest.mark.parametrize("make_inner", [_inner_sequential, _inner_functional])
def test_nested_model_is_inlined(x, make_inner):
    inputs = keras.Input(SHAPE)
    model = classifier(inputs, make_inner()(conv(4, "a")(inputs)))
    zero_filters(model.get_layer("inner"), "inner_conv", [2])
    zero_filters(model, "a", [0])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [0], "inner_conv": [2]}
    trimmed = result.model
    assert not any(isinstance(layer, keras.Model) for layer in trimmed.layers)
    assert trimmed.get_layer("inner_conv").filters == 5 and trimmed.get_layer("a").filters == 3
    assert_same_outputs(model, trimmed, x)


# --- activations ---


@pytest.mark.parametrize("activation, trimmed", [("softmax", False), ("relu", True)])
def test_softmax_over_channels_pins_them(x, activation, trimmed):
    inputs = keras.Input(SHAPE)
    y = keras.layers.Activation(activation, name="act")(conv(6, "a", activation=None)(inputs))
    model = classifier(inputs, conv(5, "b")(y))
    assert ("a" in producers(find_groups(model))) is trimmed
    result = trim_classifier(model, x, ratio=0.5)
    assert (result.model.get_layer("a").filters < 6) is trimmed
    assert result.model(x).shape == (len(x), CLASSES)


# --- custom layers, exclusion, shared layers ---


class Doubler(keras.layers.Layer):
    """A custom element-wise layer that trimming knows nothing about."""

    def call(self, inputs):
        return inputs * 2.0


class Halver(keras.layers.Layer):
    """Another custom element-wise layer, registered as a carrier by its test."""

    def call(self, inputs):
        return inputs * 0.5


def _with_custom(layer):
    inputs = keras.Input(SHAPE)
    y = layer(conv(6, "a")(inputs))
    return classifier(inputs, conv(5, "b")(y))


def test_unknown_layer_is_refused_with_the_exclude_that_passes(x):
    model = _with_custom(Doubler(name="doubler"))
    with pytest.raises(ModelError, match=r"'doubler' \(Doubler\).*--exclude doubler"):
        find_groups(model)
    with pytest.raises(ModelError, match="doubler"):
        trim_classifier(model, x, ratio=0.5)

    result = trim_classifier(model, x, ratio=0.5, exclude=["doubler"])
    assert "a" not in result.kept and "b" in result.kept
    trimmed = result.model
    # Its input and output channels stay: a keeps its filters, b keeps its input channels.
    assert trimmed.get_layer("a").filters == 6
    assert trimmed.get_layer("b").get_weights()[0].shape[2] == 6
    assert trimmed.get_layer("b").filters < 5
    assert trimmed(x).shape == (len(x), CLASSES)


def test_registered_custom_layer_is_trimmed_through(x, monkeypatch):
    # A private copy of the registry, so that the registration ends with the test.
    monkeypatch.setattr(handlers_module, "_HANDLERS", dict(handlers_module._HANDLERS))
    model = _with_custom(Halver(name="halver"))
    with pytest.raises(ModelError, match="halver"):
        find_groups(model)
    register_handler(Halver, Carrier())
    zero_filters(model, "a", [4])
    result = trim_dead(model, x)
    assert removed(result) == {"a": [4]}
    assert result.model.get_layer("halver").output.shape[-1] == 5
    assert_same_outputs(model, result.model, x)


def test_shared_layer_is_refused_with_the_exclude_that_passes(x):
    inputs = keras.Input(SHAPE)
    shared = conv(4, "shared")
    y = shared(shared(conv(4, "a")(inputs)))
    model = classifier(inputs, conv(6, "b")(y))
    with pytest.raises(ModelError, match="'shared' is called more than once.*--exclude shared"):
        find_groups(model)

    result = trim_classifier(model, x, ratio=0.5, exclude=["shared"])
    # Its weights serve both calls: what it reads (a) and what it gives (its own filters) keep every channel.
    assert set(result.kept) == {"b"}
    assert result.model.get_layer("shared").get_weights()[0].shape == (3, 3, 4, 4)
    assert result.model.get_layer("b").filters < 6
    assert result.model(x).shape == (len(x), CLASSES)


def test_sequential_model_loaded_from_a_file_is_trimmed(x, tmp_path):
    # Loading builds a Sequential model's graph step by step, leaving each layer called several times
    # outside the graph that runs it: none of them is shared.
    model = keras.Sequential(
        [keras.Input(SHAPE), conv(6, "a"), conv(5, "b"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )
    model.save(tmp_path / "sequential.keras")
    loaded = keras.saving.load_model(tmp_path / "sequential.keras")
    assert len(loaded.get_layer("a")._inbound_nodes) > 1  # what made it look shared

    result = trim_classifier(loaded, x, ratio=0.5)
    assert set(result.kept) == {"a", "b"}
    assert result.model.get_layer("b").filters < 5
    assert result.model(x).shape == (len(x), CLASSES)


# --- budgets, and the input model ---


def _budget_model():
    inputs = keras.Input(SHAPE)
    y = conv(16, "a", activation="relu")(inputs)
    y = keras.layers.MaxPooling2D(2)(y)
    y = conv(32, "b", activation="relu")(y)
    return classifier(inputs, conv(32, "c", activation="relu")(y))


@pytest.mark.parametrize("metric", ["macs", "params"])
def test_budget_policies_meet_the_target(x, metric):
    model = _budget_model()
    before = profile_model(model)
    result = trim_classifier(model, x, **{f"target_{metric}": 0.5})
    after = profile_model(result.model)
    assert getattr(after, metric) <= 0.5 * getattr(before, metric)
    assert getattr(after, metric) > 0.2 * getattr(before, metric)  # no more than needed, roughly
    assert result.model(x).shape == (len(x), CLASSES)


def test_unreachable_budget_is_a_usage_error(x):
    with pytest.raises(UsageError, match="cannot be met"):
        trim_classifier(_budget_model(), x, target_macs=0.001, min_channels=64)


def test_input_model_is_unchanged(x):
    inputs = keras.Input(SHAPE)
    y = keras.layers.Concatenate()([conv(4, "a")(inputs), conv(4, "b")(inputs)])
    y = keras.layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, activation="tanh", name="sep")(y)
    s = keras.layers.Reshape((1, 1, 6))(keras.layers.GlobalAveragePooling2D()(y))
    s = conv(6, "se_expand", activation="sigmoid", kernel_size=1)(s)
    model = classifier(inputs, keras.layers.Multiply()([y, s]))
    zero_filters(model, "a", [1])
    config, weights, outputs = model.get_config(), [w.copy() for w in model.get_weights()], np.asarray(model(x))
    result = trim_classifier(model, x, ratio=0.4)
    assert result.model.count_params() < model.count_params()
    assert model.get_config() == config
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(np.asarray(model(x)), outputs)
