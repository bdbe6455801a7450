import numpy as np
import pytest

from tfscissor.errors import ModelError, UsageError
from tfscissor.models import build_model
from tfscissor.trim import (
    ChannelStatistics,
    LayerStatistics,
    SurgeryPlan,
    collect_statistics,
    criterion_names,
    find_groups,
    get_criterion,
    register_criterion,
    select_channels,
    trim_model,
)


def _chain(**kwargs):
    return build_model("plain", (32, 32, 3), 5, widths=(8, 16, 16), **kwargs)


def _kill(model, bn_name, channels):
    """Make channels dead: a large negative batch-norm shift keeps their ReLU output at exactly zero."""
    bn = model.get_layer(bn_name)
    weights = bn.get_weights()
    weights[1][channels] = -1e4
    bn.set_weights(weights)


def test_groups_of_a_chain():
    groups = find_groups(_chain(convs_per_stage=2))
    assert [g.name for g in groups] == [
        "stage1_conv1_conv",
        "stage1_conv2_conv",
        "stage2_conv1_conv",
        "stage2_conv2_conv",
        "stage3_conv1_conv",
        "stage3_conv2_conv",
    ]
    first, last = groups[0], groups[-1]
    assert first.layers == ("stage1_conv1_conv", "stage1_conv1_bn", "stage1_conv1_relu", "stage1_conv2_conv")
    assert [m.layer for m in first.producers] == ["stage1_conv1_conv"] and first.channels == 8
    # Relevance is read at the activation, also where pooling lies between it and the next layer.
    assert [t.layer for t in first.taps] == ["stage1_conv1_relu"]
    assert [t.layer for t in last.taps] == ["stage3_conv2_relu"] and "pool" in last.layers
    assert last.layers[-1] == "predictions"
    # The output layer's classes are never a group.
    assert all(g.name != "predictions" for g in groups)


def test_exclude():
    groups = find_groups(_chain(), exclude=["stage2_conv1_conv"])
    assert "stage2_conv1_conv" not in [g.name for g in groups]
    with pytest.raises(ModelError, match="excluded layers not in"):
        find_groups(_chain(), exclude=["nope"])


@pytest.mark.parametrize("kwargs", [{}, {"convs_per_stage": 2}, {"dropout": 0.3}])
def test_removing_dead_channels_keeps_outputs(kwargs, images):
    model = _chain(**kwargs)
    _kill(model, "stage1_conv1_bn", [1, 5])
    _kill(model, "stage3_conv1_bn", [0, 2, 3])
    stats = collect_statistics(model, images)
    result = trim_model(model, stats, min_relevance=0.0)
    for producer, tap, killed in (
        ("stage1_conv1_conv", "stage1_conv1_relu", [1, 5]),
        ("stage3_conv1_conv", "stage3_conv1_relu", [0, 2, 3]),
    ):
        np.testing.assert_array_equal(result.kept[producer], np.flatnonzero(stats[tap].mean > 0))
        assert not set(killed) & set(result.kept[producer].tolist())
    np.testing.assert_allclose(result.model.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    assert result.model.get_layer("stage1_conv1_conv").filters == len(result.kept["stage1_conv1_conv"]) <= 6
    assert result.model.count_params() < model.count_params()


def test_input_model_is_untouched(images):
    model = _chain()
    before = [w.copy() for w in model.get_weights()]
    config = model.get_config()
    trim_model(model, collect_statistics(model, images), ratio=0.5)
    assert model.get_config() == config
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_ratio_round_to_and_min_channels(images):
    model = _chain()
    stats = collect_statistics(model, images)
    result = trim_model(model, stats, ratio=0.5, round_to=4, min_channels=4)
    kept = {name: len(k) for name, k in result.kept.items()}
    assert all(k % 4 == 0 and k >= 4 for k in kept.values())
    assert sum(kept.values()) <= 40 and sum(kept.values()) >= 20  # of 40 channels, ~half removed, rounding up
    assert result.model.predict(images[:2], verbose=0).shape == (2, 5)


def test_select_channels_threshold_and_global_ratio():
    scores = {"a": np.array([0.0, 0.5, 2.0, 1.0]), "b": np.array([0.1, 3.0])}
    by_threshold = select_channels(scores, min_relevance=0.5)
    np.testing.assert_array_equal(by_threshold["a"], [2, 3])
    np.testing.assert_array_equal(by_threshold["b"], [1])
    kept = select_channels(scores, ratio=0.5)
    # The three lowest of six channels go (0.0, 0.1, 0.5), across groups.
    np.testing.assert_array_equal(kept["a"], [2, 3])
    np.testing.assert_array_equal(kept["b"], [1])
    # A group never empties and keeps min_channels even when all its channels score lowest.
    kept = select_channels({"a": np.zeros(4), "b": np.ones(4)}, ratio=0.75, min_channels=2)
    assert len(kept["a"]) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one trimming policy"),
        ({"ratio": 0.5, "min_relevance": 0.1}, "exactly one trimming policy"),
        ({"ratio": 1.0}, "ratio must be in"),
        ({"min_relevance": -1.0}, "min_relevance must be"),
        ({"ratio": 0.5, "round_to": 0}, "round_to"),
    ],
)
def test_select_channels_option_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        select_channels({"a": np.ones(3)}, **kwargs)


def test_group_refuses_to_empty_or_overrun():
    group = find_groups(_chain())[0]
    with pytest.raises(ValueError, match="would lose all"):
        group.apply(SurgeryPlan(), [])
    with pytest.raises(ValueError, match="has channels 0..7"):
        group.apply(SurgeryPlan(), [0, 8])


def test_criteria_registry():
    assert set(criterion_names()) >= {"relevance", "apoz", "l1", "random"}
    with pytest.raises(UsageError, match="relevance"):
        get_criterion("magic")

    @register_criterion("first_wins")
    def first_wins(group, statistics, model):
        return -np.arange(group.channels, dtype=float)

    model = _chain()
    result = trim_model(model, ChannelStatistics(), criterion="first_wins", ratio=0.5)
    # The custom criterion decides: in every group the lowest-indexed channels survive.
    for kept in result.kept.values():
        np.testing.assert_array_equal(kept, np.arange(len(kept)))
    assert len(result.kept["stage1_conv1_conv"]) < 8


def test_criteria_scores(images):
    model = _chain()
    _kill(model, "stage1_conv1_bn", [2])
    stats = collect_statistics(model, images)
    group = find_groups(model)[0]
    relevance = get_criterion("relevance")(group, stats, model)
    raw = get_criterion("relevance")(group, stats, model, normalize=False)
    assert relevance[2] == 0.0 and raw[2] == 0.0
    np.testing.assert_allclose(relevance.mean(), 1.0)
    np.testing.assert_allclose(raw, stats["stage1_conv1_relu"].mean)  # after ReLU, magnitude is the output
    apoz = get_criterion("apoz")(group, stats, model)
    assert apoz[2] == 0.0 and np.all((apoz >= 0) & (apoz <= 1))
    l1 = get_criterion("l1")(group, stats, model, normalize=False)
    kernel = model.get_layer("stage1_conv1_conv").get_weights()[0]
    np.testing.assert_allclose(l1[3], np.abs(kernel[..., 3]).sum(), rtol=1e-6)
    np.testing.assert_allclose(get_criterion("l1")(group, stats, model), l1 / l1.mean())
    random = get_criterion("random")
    np.testing.assert_array_equal(random(group, stats, model), random(group, stats, model))
    assert not np.array_equal(random(group, stats, model, seed=1), random(group, stats, model))


def test_statistics_for_another_model_are_refused(images):
    stats = ChannelStatistics(other=LayerStatistics(np.ones(2), np.ones(2), np.zeros(2), 1))
    with pytest.raises(UsageError, match="no entry for layer"):
        trim_model(_chain(), stats, ratio=0.5)


def _constant_channel_model(b_bias, b_batch_norm):
    """conv -> BN -> ReLU -> 1x1 conv `b` (with or without a bias, then a batch norm or not) -> ...: a 1x1
    consumer, so a constant input channel contributes the same to every output position (no border)."""
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    x = keras.layers.BatchNormalization(name="a_bn")(x)
    x = keras.layers.ReLU(name="a_relu")(x)
    x = keras.layers.Conv2D(6, 1, use_bias=b_bias, name="b")(x)
    if b_batch_norm:
        x = keras.layers.BatchNormalization(name="b_bn", beta_initializer="ones")(x)
    x = keras.layers.ReLU(name="b_relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    # Channel 1 of `a` outputs the constant 2: gamma 0, beta 2.
    gamma, beta, mean, variance = model.get_layer("a_bn").get_weights()
    gamma[1], beta[1] = 0.0, 2.0
    model.get_layer("a_bn").set_weights([gamma, beta, mean, variance])
    return model


@pytest.mark.parametrize(
    "compensate, b_bias, b_batch_norm, absorbed_by",
    [
        (True, False, True, "b_bn"),  # conv -> BN: the batch norm's moving mean takes the shift
        (True, True, True, "b"),  # a conv with a bias takes it in its bias
        (True, False, False, "b"),  # a conv without a bias and no batch norm gains a bias
        (False, False, True, None),
    ],
)
def test_a_removed_channel_is_replaced_by_its_mean(compensate, b_bias, b_batch_norm, absorbed_by):
    @register_criterion("second_channel_last")
    def second_channel_last(group, statistics, model):
        scores = np.ones(group.channels)
        scores[1 if group.name == "a" else 0] = 0.0
        return scores

    model = _constant_channel_model(b_bias, b_batch_norm)
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype(np.float32)
    stats = collect_statistics(model, x, ["a_relu", "b_relu"])
    result = trim_model(
        model, stats, criterion="second_channel_last", min_relevance=0.0, exclude=["b"], compensate=compensate
    )
    np.testing.assert_array_equal(result.kept["a"], [0, 2, 3])
    difference = np.abs(result.model.predict(x, verbose=0) - model.predict(x, verbose=0)).max()
    if not compensate:
        assert difference > 1e-3
        return
    # The constant 2 times b's weights for that channel moved into a bias or a moving mean: nothing changes.
    assert difference < 1e-5
    trimmed_b = result.model.get_layer("b")
    assert trimmed_b.use_bias == (absorbed_by == "b")
    if absorbed_by == "b":
        original_bias = model.get_layer("b").bias.numpy() if b_bias else 0.0
        assert np.abs(trimmed_b.bias.numpy() - original_bias).max() > 1e-3
    if b_batch_norm:
        shift = result.model.get_layer("b_bn").moving_mean.numpy() - model.get_layer("b_bn").moving_mean.numpy()
        assert (np.abs(shift).max() > 1e-3) == (absorbed_by == "b_bn")


def test_a_budget_is_met_by_a_cheaper_last_channel_rather_than_overshot():
    """The lowest score left is a costly channel that would take the cost to 0.70 for a budget of 0.95: a
    channel of the other group lands on the budget instead."""
    scores = {"wide": np.array([0.1, 5.0]), "narrow": np.array([0.3, 0.2, 6.0])}

    def cost(kept):
        return 1.0 - 0.3 * (2 - len(kept["wide"])) - 0.05 * (3 - len(kept["narrow"]))

    kept = select_channels(scores, cost=cost, target=0.95)
    assert kept["wide"].tolist() == [0, 1] and kept["narrow"].tolist() == [0, 2]
    # Where nothing else meets the budget, the lowest score goes as before.
    kept = select_channels(scores, cost=cost, target=0.72)
    assert kept["wide"].tolist() == [1]


def test_the_budget_a_costly_last_channel_leaves_unspent_is_given_back():
    """Two cheap channels of ``a`` go first, then ``b``'s costly one must (no channel of ``a`` alone reaches
    0.8); that lands at 0.60, and the best channels it left removed that still fit come back: both of ``a``'s."""
    scores = {"a": np.array([0.1, 0.2, 0.3, 9.0]), "b": np.array([0.25, 9.0])}

    def cost(kept):
        return 1.0 - 0.05 * (4 - len(kept["a"])) - 0.3 * (2 - len(kept["b"]))

    kept = select_channels(scores, cost=cost, target=0.8)
    assert kept["a"].tolist() == [0, 1, 2, 3] and kept["b"].tolist() == [1]
    assert cost(kept) == pytest.approx(0.7)  # the closest to 0.8 that keeps b's costly channel out
    # Of two that fit, the better-scored comes back first: with room for one of a's, it is 0.2, not 0.1.
    kept = select_channels(scores, cost=cost, target=0.66)
    assert kept["a"].tolist() == [1, 2, 3] and kept["b"].tolist() == [1]
