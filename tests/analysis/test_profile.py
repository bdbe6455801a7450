"""The graph walk: per-layer rows, totals, nested models, peak activation memory, serialisation, errors."""

import json
import math

import keras
import pytest

from tfscissor.analysis import LayerProfile, ModelProfile, profile_model
from tfscissor.errors import DataError, ModelError

L = keras.layers


def _rows(profile):
    return {layer.name: layer for layer in profile.layers}


def _add_concat_model():
    x = keras.Input((8, 8, 3), name="image")
    a = L.Conv2D(4, 1, name="a")(x)
    b = L.Conv2D(4, 3, padding="same", name="b")(x)
    s = L.Add(name="add")([a, b])
    c = L.Concatenate(name="concat")([s, a])
    n = L.BatchNormalization(name="bn")(c)
    d = L.Conv2D(2, 1, name="d")(n)
    g = L.GlobalAveragePooling2D(name="gap")(d)
    return keras.Model(x, L.Dense(5, name="dense")(g))


def test_functional_model_with_add_and_concatenate():
    model = _add_concat_model()
    profile = profile_model(model)
    rows = _rows(profile)

    assert [layer.name for layer in profile.layers] == [layer.name for layer in model.layers]
    assert rows["a"].macs == (8 * 8) * 4 * (1 * 1 * 3)  # 768
    assert rows["b"].macs == (8 * 8) * 4 * (3 * 3 * 3)  # 6912
    assert rows["add"].macs == rows["concat"].macs == rows["bn"].macs == rows["gap"].macs == 0
    assert rows["d"].macs == (8 * 8) * 2 * (1 * 1 * 8)  # 1024: concat has 4 + 4 channels
    assert rows["dense"].macs == 2 * 5  # 10
    assert profile.macs == 768 + 6912 + 1024 + 10

    assert rows["image"].class_name == "InputLayer"
    assert rows["image"].output_shape == (8, 8, 3)
    assert rows["concat"].output_shape == (8, 8, 8)
    assert rows["concat"].activation_elements == 8 * 8 * 8
    assert rows["gap"].output_shape == (2,)

    # a: 3*4 + 4; b: 27*4 + 4; bn: 4 vectors of 8; d: 8*2 + 2; dense: 2*5 + 5.
    assert profile.params == model.count_params() == 16 + 112 + 32 + 18 + 15
    # The batch norm's moving mean and variance are not trainable.
    assert profile.trainable_params == 193 - 2 * 8
    assert rows["bn"].params == 32
    assert sum(layer.params for layer in profile.layers) == profile.params


def test_sequential_model_rows_follow_model_layers():
    model = keras.Sequential([keras.Input((6,)), L.Dense(4, name="d1"), L.Dense(2, name="d2")])
    profile = profile_model(model)
    # Like model.summary(): the InputLayer Keras adds to a Sequential model is not a row.
    assert [layer.name for layer in profile.layers] == ["d1", "d2"]
    assert profile.macs == 6 * 4 + 4 * 2
    assert profile.params == model.count_params()
    # The input still counts for memory: 6 live while d1 writes 4.
    assert profile.peak_activation_elements == 6 + 4


def test_sequential_model_built_without_an_input():
    model = keras.Sequential([L.Conv2D(3, 3, name="conv")])
    model.build((None, 5, 5, 2))
    profile = profile_model(model)
    assert profile.macs == (3 * 3) * 3 * (3 * 3 * 2)
    assert profile.layers[0].output_shape == (3, 3, 3)


def _inner_model():
    x = keras.Input((4, 4, 2))
    y = L.Conv2D(8, 1, name="expand")(x)
    return keras.Model(x, L.Conv2D(3, 1, name="project")(y), name="inner")


def _outer_model(inner):
    x = keras.Input((4, 4, 1), name="image")
    y = L.Conv2D(2, 3, padding="same", name="stem")(x)
    return keras.Model(x, inner(y))


def test_nested_model_is_walked_into():
    profile = profile_model(_outer_model(_inner_model()))
    rows = _rows(profile)
    stem = (4 * 4) * 2 * (3 * 3 * 1)  # 288
    expand = (4 * 4) * 8 * (1 * 1 * 2)  # 256
    project = (4 * 4) * 3 * (1 * 1 * 8)  # 384
    assert rows["stem"].macs == stem
    assert rows["inner"].macs == expand + project
    assert rows["inner"].class_name == "Functional"
    assert rows["inner"].output_shape == (4, 4, 3)
    assert [layer.name for layer in rows["inner"].sublayers][1:] == ["expand", "project"]
    assert [layer.macs for layer in rows["inner"].sublayers][1:] == [expand, project]
    assert profile.macs == stem + expand + project


def test_nested_application_built_for_any_size_is_costed_at_the_size_it_is_called_with():
    # include_top=False without input_shape builds for (None, None, 3): the walk must propagate 32x32.
    base = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    features = L.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, L.Dense(10, name="head")(features))
    alone = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35, input_shape=(32, 32, 3))

    profile = profile_model(model)
    nested = _rows(profile)[base.name]
    assert nested.output_shape == (1, 1, 1280)
    assert nested.macs == profile_model(alone).macs
    assert profile.macs == nested.macs + 1280 * 10
    assert [layer.name for layer in nested.sublayers] == [layer.name for layer in base.layers]
    assert nested.params == base.count_params()
    assert profile.params == model.count_params()


def test_nested_sequential_model():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, name="d1")], name="seq")
    inputs = keras.Input((6,))
    profile = profile_model(keras.Model(inputs, inner(inputs)))
    seq = _rows(profile)["seq"]
    assert seq.macs == 6 * 4
    assert [layer.name for layer in seq.sublayers] == ["d1"]


def test_nested_model_with_two_outputs():
    x = keras.Input((4, 4, 1))
    inner = keras.Model(x, [L.Conv2D(2, 1)(x), L.Conv2D(3, 1)(x)], name="two_heads")
    inputs = keras.Input((4, 4, 1))
    row = _rows(profile_model(keras.Model(inputs, inner(inputs))))["two_heads"]
    assert row.output_shape == ((4, 4, 2), (4, 4, 3))
    assert row.activation_elements == 4 * 4 * 2 + 4 * 4 * 3
    assert row.macs == (4 * 4) * 2 * 1 + (4 * 4) * 3 * 1


def test_shared_layer_counts_every_call_and_its_params_once():
    shared = L.Dense(3, name="shared")
    a, b = keras.Input((4,)), keras.Input((4,))
    model = keras.Model([a, b], L.Concatenate()([shared(a), shared(b)]))
    profile = profile_model(model)
    row = _rows(profile)["shared"]
    assert row.macs == 2 * (4 * 3)
    assert row.activation_elements == 2 * 3
    assert row.output_shape == (3,)
    assert row.params == 4 * 3 + 3 == profile.params == model.count_params()


def test_keras_ops_calls_are_rows_like_in_model_summary():
    x = keras.Input((4, 4, 2))
    y = L.Conv2D(3, 1, name="conv")(x)
    model = keras.Model(x, keras.ops.relu(y) * 2.0)
    profile = profile_model(model)
    assert [layer.name for layer in profile.layers] == [operation.name for operation in model.operations]
    assert len(profile.layers) == 4
    assert [layer.macs for layer in profile.layers] == [0, (4 * 4) * 3 * 2, 0, 0]
    assert profile.layers[-1].output_shape == (4, 4, 3)
    assert profile.layers[-1].params == 0


# Peak activation memory: inputs live from the start; each call's outputs are allocated while its inputs are
# still live; a tensor is freed after its last consumer, model outputs never.


def test_peak_activation_of_a_chain():
    x = keras.Input((8, 8, 3))  # 192
    y = L.Conv2D(4, 3, padding="same", name="conv")(x)  # 256
    y = L.MaxPooling2D(2, name="pool")(y)  # 64
    y = L.Flatten(name="flatten")(y)  # 64
    model = keras.Model(x, L.Dense(10, name="dense")(y))  # 10
    profile = profile_model(model)
    # input 192 + conv 256 = 448; then conv 256 + pool 64 = 320; pool 64 + flatten 64; flatten 64 + dense 10.
    assert profile.peak_activation_elements == 192 + 256
    assert profile.peak_activation_layer == "conv"
    assert [layer.activation_elements for layer in profile.layers] == [192, 256, 64, 64, 10]


def _residual(skip):
    x = keras.Input((8, 8, 4))  # 256
    c1 = L.Conv2D(8, 3, padding="same", name="c1")(x)  # 512
    c2 = L.Conv2D(4, 3, padding="same", name="c2")(c1)  # 256
    return keras.Model(x, L.Add(name="add")([x, c2]) if skip else c2)


def test_peak_activation_of_a_residual_block():
    # The skip keeps the input (256) live through c2: input 256 + c1 512 + c2 256 while c2 runs.
    residual = profile_model(_residual(skip=True))
    assert residual.peak_activation_elements == 256 + 512 + 256
    assert residual.peak_activation_layer == "c2"
    # Without it the input dies after c1, and the peak is c1 512 + c2 256 (or input 256 + c1 512).
    chain = profile_model(_residual(skip=False))
    assert chain.peak_activation_elements == 512 + 256


def test_peak_activation_keeps_model_outputs_live():
    x = keras.Input((4,))  # 4
    a = L.Dense(100, name="a")(x)  # 100, a model output
    b = L.Dense(2, name="b")(a)  # 2
    c = L.Dense(50, name="c")(b)  # 50
    profile = profile_model(keras.Model(x, [a, c]))
    # a stays live to the end: while c runs, a 100 + b 2 + c 50.
    assert profile.peak_activation_elements == 100 + 2 + 50
    assert profile.peak_activation_layer == "c"


def test_peak_activation_inside_a_nested_model():
    profile = profile_model(_outer_model(_inner_model()))
    # Outer: image 16 + stem 32 = 48. Inner, with nothing else live outside: its input (the stem output, 32)
    # + expand 128 = 160; then expand 128 + project 48 = 176.
    assert profile.peak_activation_elements == 128 + 48
    assert profile.peak_activation_layer == "inner/project"


def test_peak_activation_counts_what_the_outer_graph_keeps_live_around_a_nested_model():
    x = keras.Input((4, 4, 2))  # 32
    y = _inner_model()(x)
    model = keras.Model(x, L.Concatenate()([x, y]))
    profile = profile_model(model)
    # x stays live for the concatenation; inside, expand 128 + project 48 on top of x 32.
    assert profile.peak_activation_elements == 32 + 128 + 48
    assert profile.peak_activation_layer == "inner/project"


# Tables and serialisation.


def test_table_rows():
    profile = profile_model(_outer_model(_inner_model()))
    table = profile.table()
    assert [row["name"] for row in table] == ["image", "stem", "inner"]
    assert table[1] == {
        "name": "stem",
        "class": "Conv2D",
        "output_shape": [4, 4, 2],
        "macs": 288,
        "params": 3 * 3 * 1 * 2 + 2,
        "activations": 32,
    }
    expanded = [row["name"] for row in profile.table(expand_nested=True)]
    assert expanded[:3] == ["image", "stem", "inner"]
    assert expanded[4:] == ["inner/expand", "inner/project"]
    json.dumps(table)


def test_to_dict_is_json_and_reads_back_equal():
    x = keras.Input((4, 4, 1))
    inner = keras.Model(x, [L.Conv2D(2, 1)(x), L.Conv2D(3, 1)(x)], name="two_heads")
    inputs = keras.Input((4, 4, 1))
    profile = profile_model(keras.Model(inputs, L.Concatenate()(inner(inputs))))

    data = json.loads(json.dumps(profile.to_dict()))
    assert data["macs"] == profile.macs
    assert data["params"] == profile.params
    assert data["layers"][1]["output_shape"] == [[4, 4, 2], [4, 4, 3]]
    restored = ModelProfile.from_dict(data)
    assert restored == profile
    assert isinstance(restored.layers[1], LayerProfile)
    assert restored.layers[1].sublayers == profile.layers[1].sublayers


@pytest.mark.parametrize("data", [{}, {"name": "m", "layers": 3}, {"name": "m", "layers": [{"name": "x"}]}])
def test_from_dict_refuses_what_is_not_a_profile(data):
    with pytest.raises(DataError, match="Not a tfscissor model profile"):
        ModelProfile.from_dict(data)


# Errors.


def test_not_a_model_is_refused():
    with pytest.raises(TypeError, match="takes a keras.Model"):
        profile_model(L.Dense(3))


def test_unbuilt_sequential_model_is_refused():
    with pytest.raises(ModelError, match="'unbuilt' is not built"):
        profile_model(keras.Sequential([L.Dense(3)], name="unbuilt"))


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = L.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


def test_subclassed_model_is_refused():
    model = Subclassed(name="sub")
    model(keras.ops.ones((1, 3)))
    with pytest.raises(ModelError, match="'sub' \\(Subclassed\\) is a subclassed model"):
        profile_model(model)


def test_subclassed_model_nested_in_a_functional_model_is_refused():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Subclassed(name="sub")(inputs))
    with pytest.raises(ModelError, match="'sub' \\(Subclassed\\).*register_cost"):
        profile_model(model)


def test_input_of_unknown_size_is_refused():
    inputs = keras.Input((None, None, 3), name="any_size")
    model = keras.Model(inputs, L.Conv2D(2, 3)(inputs))
    with pytest.raises(ModelError, match="'any_size'.*every size but the batch"):
        profile_model(model)


class UnknownLength(L.Layer):
    """Claims an output whose length is unknown, whatever the input."""

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None)


def test_layer_with_an_output_of_unknown_shape_is_refused():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, UnknownLength(name="vague")(inputs))
    with pytest.raises(ModelError, match="'vague' \\(UnknownLength\\) produces a tensor of unknown shape"):
        profile_model(model)


class BatchSensitive(L.Layer):
    """Accepts only an unknown batch size when asked for its output shape."""

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        if input_shape[0] is not None:
            raise ValueError("expected an unknown batch size")
        return input_shape


def test_layer_whose_shape_cannot_be_inferred_at_batch_one_is_reported():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, BatchSensitive(name="picky")(inputs))
    with pytest.raises(ModelError, match="output shape of layer 'picky'.*expected an unknown batch size"):
        profile_model(model)


# The keras.applications zoo and the project's own builders profile through, rows matching the model.


@pytest.mark.parametrize("name", ["ConvNeXtTiny", "EfficientNetV2B0", "ResNet50V2", "MobileNetV3Small"])
def test_applications_profile_with_rows_params_and_memory_consistent(name):
    model = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(64, 64, 3))
    profile = profile_model(model)
    assert [layer.name for layer in profile.layers] == [operation.name for operation in model.operations]
    assert profile.params == model.count_params() == sum(layer.params for layer in profile.layers)
    assert profile.trainable_params == sum(math.prod(weight.shape) for weight in model.trainable_weights)
    assert profile.macs > 0
    assert profile.peak_activation_elements >= max(layer.activation_elements for layer in profile.layers)


@pytest.mark.parametrize("name", ["plain", "resnet", "mobilenetv2"])
def test_project_builders_profile(name):
    from tfscissor.models import build_model

    model = build_model(name, (32, 32, 3), 5)
    profile = profile_model(model)
    assert [layer.name for layer in profile.layers] == [layer.name for layer in model.layers]
    assert profile.params == model.count_params()
    assert profile.layers[-1].output_shape == (5,)
