"""Cost rules: hand counts per layer type, the zero-cost conventions, and the registry."""

import keras
import pytest

from tests.analysis.layer_cases import LAYER_CASES
from tfscissor.analysis import costs, profile_model, register_cost
from tfscissor.errors import ModelError

L = keras.layers


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Let each test register rules without leaking them into other tests."""
    monkeypatch.setattr(costs, "_RULES", dict(costs._RULES))


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda case: case.id)
def test_hand_counted_layers(case):
    model = case.build()
    profile = profile_model(model)
    (row,) = [layer for layer in profile.layers if layer.name == case.layer_name]
    assert row.macs == case.macs
    assert row.output_shape == case.output_shape
    # Everything else in these models (inputs) is free.
    assert profile.macs == case.macs
    assert row.params == model.get_layer(case.layer_name).count_params()
    assert profile.params == model.count_params()


def test_zero_cost_layers():
    inputs = keras.Input((8, 8, 4))
    x = L.ZeroPadding2D(1, name="pad")(inputs)  # 10x10x4
    x = L.MaxPooling2D(2, name="maxpool")(x)  # 5x5x4
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    y = L.Activation("sigmoid", name="sigmoid")(x)
    x = L.Multiply(name="multiply")([x, y])
    x = L.Add(name="add")([x, y])
    x = L.Concatenate(name="concat")([x, y])  # 5x5x8
    x = L.AveragePooling2D(2, name="avgpool")(x)  # 2x2x8
    x = L.LayerNormalization(name="layernorm")(x)
    x = L.Dropout(0.5, name="dropout")(x)
    x = L.Reshape((4, 8), name="reshape")(x)
    x = L.PReLU(name="prelu")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)  # 8
    model = keras.Model(inputs, x)
    profile = profile_model(model)
    assert [layer.macs for layer in profile.layers] == [0] * len(model.layers)
    assert profile.params == model.count_params()
    assert profile.layers[-1].output_shape == (8,)


def test_batch_norm_counts_params_but_no_macs():
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, L.BatchNormalization(name="bn")(inputs))
    (_, bn) = profile_model(model).layers
    # gamma, beta, moving mean, moving variance: 4 vectors of 3.
    assert (bn.macs, bn.params) == (0, 4 * 3)


class Scale(L.Layer):
    """A custom layer with a weight: one multiply per element."""

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.gamma

    def compute_output_shape(self, input_shape):
        return input_shape


class Identity(L.Layer):
    """A custom layer without weights."""

    def call(self, inputs):
        return inputs


def _model_with(layer, input_shape=(4, 4, 3)):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


def test_layer_with_weights_and_no_rule_is_refused_by_name():
    model = _model_with(Scale(name="my_scale"))
    with pytest.raises(ModelError, match=r"'my_scale' \(Scale\).*register_cost\(Scale\)"):
        profile_model(model)


def test_layer_without_weights_and_no_rule_is_free():
    model = _model_with(Identity(name="identity"))
    assert profile_model(model).layers[-1].macs == 0


def test_registered_rule_is_used_and_gets_shapes_without_batch():
    seen = []

    @register_cost(Scale)
    def scale_macs(layer, input_shapes, output_shapes):
        seen.append((layer.name, input_shapes, output_shapes))
        (shape,) = output_shapes
        return shape[0] * shape[1] * shape[2]

    model = _model_with(Scale(name="my_scale"))
    assert profile_model(model).macs == 4 * 4 * 3
    assert seen == [("my_scale", ((4, 4, 3),), ((4, 4, 3),))]


def test_register_cost_returns_the_function_and_takes_several_classes():
    def rule(layer, input_shapes, output_shapes):
        return 1

    assert register_cost(Scale, Identity)(rule) is rule
    assert costs.find_rule(Scale) is rule
    assert costs.find_rule(Identity) is rule


def test_rules_are_inherited_and_a_subclass_rule_wins():
    class MyConv(L.Conv2D):
        pass

    model = _model_with(MyConv(2, 3, name="my_conv"))
    # Conv2D's rule: 2x2 positions x 2 filters x (3x3 kernel x 3 channels).
    assert profile_model(model).macs == (2 * 2) * 2 * (3 * 3 * 3)

    @register_cost(MyConv)
    def my_conv_macs(layer, input_shapes, output_shapes):
        return 7

    assert profile_model(model).macs == 7
    # The base class keeps its own rule.
    assert costs.find_rule(L.Conv2D) is not my_conv_macs


def test_a_later_registration_replaces_a_built_in_rule():
    @register_cost(L.BatchNormalization)
    def unfolded_batch_norm(layer, input_shapes, output_shapes):
        (shape,) = output_shapes
        return shape[0] * shape[1] * shape[2]

    model = _model_with(L.BatchNormalization())
    assert profile_model(model).macs == 4 * 4 * 3


@pytest.mark.parametrize("not_a_layer_class", [int, "Dense", L.Dense(3), None])
def test_register_cost_refuses_what_is_not_a_layer_class(not_a_layer_class):
    with pytest.raises(TypeError, match="Keras layer classes"):
        register_cost(not_a_layer_class)


def test_register_cost_needs_a_class():
    with pytest.raises(TypeError, match="at least one layer class"):
        register_cost()


@pytest.mark.parametrize("bad", [-1, 2.5, True, "12", None])
def test_a_rule_returning_no_count_is_reported(bad):
    @register_cost(Scale)
    def broken(layer, input_shapes, output_shapes):
        return bad

    with pytest.raises(ModelError, match=r"broken.*'my_scale' \(Scale\).*non-negative integer"):
        profile_model(_model_with(Scale(name="my_scale")))


def test_time_distributed_over_an_unknown_weighted_layer_is_refused():
    model = _model_with(L.TimeDistributed(Scale(name="inner_scale")), input_shape=(2, 4, 4, 3))
    with pytest.raises(ModelError, match="'inner_scale'"):
        profile_model(model)


def test_convnext_layer_scale_is_free():
    from keras.src.applications.convnext import LayerScale

    model = _model_with(LayerScale(1e-6, 3, name="layer_scale"))
    profile = profile_model(model)
    assert (profile.macs, profile.params) == (0, 3)
