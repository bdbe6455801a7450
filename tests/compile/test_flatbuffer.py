import numpy as np
import pytest

from tests.compile.helpers import litert_interpreter, litert_ops, repack
from tfscissor.deploy import read_model
from tfscissor.errors import ModelError, UsageError


def test_ops_in_execution_order_match_litert(int8_model, model_name):
    data = int8_model(model_name)
    info = read_model(data)
    expected = litert_ops(data)
    assert list(info.ops) == expected
    assert info.op_counts == {op: expected.count(op) for op in dict.fromkeys(expected)}
    assert info.distinct_ops == tuple(sorted(set(expected)))


def test_tensors_and_io_match_litert(int8_model, model_name):
    data = int8_model(model_name)
    info = read_model(data)
    interpreter = litert_interpreter(data)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    for tensor in info.tensors:
        if tensor.index in details:  # LiteRT omits tensors it never materialises
            assert tensor.dtype == np.dtype(details[tensor.index]["dtype"]).name
            assert tensor.name == details[tensor.index]["name"]
    for mine, theirs in (
        (info.input, interpreter.get_input_details()[0]),
        (info.output, interpreter.get_output_details()[0]),
    ):
        assert mine.shape == tuple(theirs["shape"])
        assert mine.dtype == "int8"
        assert mine.quantization == pytest.approx(theirs["quantization"])
        assert not mine.constant
    assert info.size == len(data) and info.version == 3 and info.num_subgraphs == 1


def test_builder_models_are_fully_int8_with_static_shapes(int8_model, model_name):
    info = read_model(int8_model(model_name))
    assert info.float_activations == ()
    assert info.fully_int8 and info.non_int8_tensors == ()
    # The batch is fixed at 1, so no tensor is dynamic and Keras's Flatten needs no run-time SHAPE / PACK.
    assert not any(t.dynamic for t in info.tensors)
    assert not {"SHAPE", "PACK"} & set(info.ops)


def test_float_activation_is_reported(int8_model):
    def make_float(model, schema):
        model.subgraphs[0].tensors[model.subgraphs[0].outputs[0]].type = schema.TensorType.FLOAT32

    info = read_model(repack(int8_model("plain"), make_float))
    assert not info.fully_int8
    assert info.output.name in info.non_int8_tensors and info.float_activations == (info.output.name,)


def test_custom_and_unknown_op_names(int8_model):
    def customise(model, schema):
        model.operatorCodes[0].builtinCode = model.operatorCodes[0].deprecatedBuiltinCode = (
            schema.BuiltinOperator.CUSTOM
        )
        model.operatorCodes[0].customCode = b"MyOp"
        model.operatorCodes[1].builtinCode = 250

    info = read_model(repack(int8_model("plain"), customise))
    assert "CUSTOM:MyOp" in info.ops and "UNKNOWN_BUILTIN_250" in info.ops


def test_reads_a_path_and_names_it(tmp_path, int8_model):
    path = tmp_path / "m.tflite"
    path.write_bytes(int8_model("plain"))
    assert read_model(path).name == str(path)
    assert read_model(str(path), name="custom").name == "custom"


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        read_model(tmp_path / "absent.tflite")


def test_not_bytes_or_path():
    with pytest.raises(UsageError, match="bytes or a path"):
        read_model(123)


@pytest.mark.parametrize("data", [b"", b"hello world, not a model", b"\x00" * 64])
def test_not_a_tflite_file(tmp_path, data):
    path = tmp_path / "junk.tflite"
    path.write_bytes(data)
    with pytest.raises(ModelError, match=f"{path}.*TFL3"):
        read_model(path)


@pytest.mark.parametrize("fraction", [0.001, 0.25, 0.5, 0.9, 0.999])
def test_truncated_file_names_the_file(tmp_path, int8_model, fraction):
    data = int8_model("resnet")
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[: max(8, int(len(data) * fraction))])
    with pytest.raises(ModelError, match=f"{path} is a corrupt or truncated"):
        read_model(path)


def _edit(name, mutate):
    def run(model, schema):
        mutate(model, schema)

    run.__name__ = name
    return run


CORRUPTIONS = [
    _edit("no subgraph", lambda m, s: setattr(m, "subgraphs", [])),
    _edit("bad opcode index", lambda m, s: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 99)),
    _edit("bad tensor index", lambda m, s: setattr(m.subgraphs[0].operators[0], "outputs", [999])),
    _edit("bad input index", lambda m, s: setattr(m.subgraphs[0], "inputs", [999])),
    _edit(
        "buffer past the end", lambda m, s: (setattr(m.buffers[1], "offset", 10**6), setattr(m.buffers[1], "size", 10))
    ),
]


@pytest.mark.parametrize("mutate", CORRUPTIONS, ids=lambda f: f.__name__)
def test_inconsistent_model_is_corrupt(int8_model, mutate):
    data = repack(int8_model("plain"), mutate)
    with pytest.raises(ModelError, match="edited.tflite is a corrupt"):
        read_model(data, name="edited.tflite")


def test_to_dict_is_json_and_names_the_input_quantisation(int8_model):
    import json

    info = read_model(int8_model("plain"), name="plain.tflite")
    payload = json.loads(json.dumps(info.to_dict()))
    assert payload["name"] == "plain.tflite" and payload["size"] == info.size
    assert payload["ops"] == list(info.ops) and payload["fully_int8"] is True
    assert payload["inputs"][0]["dtype"] == "int8" and payload["inputs"][0]["zero_point"] == -128
