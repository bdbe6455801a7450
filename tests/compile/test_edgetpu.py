"""The Edge TPU: the mapping predicted from the flatbuffer, the compiler's output parsed, and the compiler run.

The rule tests break one of Coral's requirements at a time in a converted int8 model (edited through the schema,
or a tiny Keras model) and check the compiler's status at that operator and the cut after it. The parser tests
read real compiler output, quoted verbatim from public logs and issues. ``compile_models`` runs against
fake_edgetpu_compiler.py, since Coral's compiler cannot be had here; one test runs the real one where installed.
"""

import contextlib
import copy
import json
import shutil
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from tests.compile.conftest import INPUT_SHAPE, NUM_CLASSES
from tests.compile.fake_edgetpu_compiler import MARKER
from tests.compile.helpers import repack
from tfscissor.compile.edgetpu import analyse_edgetpu
from tfscissor.compile.edgetpu_compiler import (
    CompilerMissing,
    compile_models,
    find_compiler,
    parse_compiler_output,
    parse_operation_log,
)
from tfscissor.deploy.flatbuffer import read_model
from tfscissor.errors import ModelError, UsageError

# The compiler's status strings, as its logs print them.
MAPPED = "Mapped to Edge TPU"
AFTER_CPU_OP = "More than one subgraph is not supported"
UNMAPPED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
NOT_SUPPORTED = "Operation not supported"
DATA_TYPE = "Operation is working on an unsupported data type"
RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
STRIDES = "Only Strided-Slice with unitary strides supported"
VERSION_NOT_SUPPORTED = "Operation version not supported"

# rajansaini691/retinanet-model-tflite, tiny_yolo_edgetpu.log: compiler 14, cut early
LOG_TINY_YOLO = """\
Edge TPU Compiler version 14.1.317412892
Input: tiny_yolo.tflite
Output: tiny_yolo_edgetpu.tflite

Operator                       Count      Status

CONCATENATION                  1          More than one subgraph is not supported
MAX_POOL_2D                    6          Mapped to Edge TPU
RESIZE_NEAREST_NEIGHBOR        1          Operation version not supported
CONV_2D                        11         Mapped to Edge TPU
CONV_2D                        2          More than one subgraph is not supported
QUANTIZE                       1          Operation is otherwise supported, but not mapped due to some unspecified limitation
QUANTIZE                       1          More than one subgraph is not supported
QUANTIZE                       2          Mapped to Edge TPU
"""

# jveitchmichaelis/edgetpu-yolo, yolov8n_full_integer_quant_edgetpu_192.log: compiler 16, fully mapped
LOG_YOLOV8 = """\
Edge TPU Compiler version 16.0.384591198
Input: yolov8n_saved_model/yolov8n_full_integer_quant.tflite
Output: yolov8n_saved_model/yolov8n_full_integer_quant_edgetpu.tflite

Operator                       Count      Status

SOFTMAX                        1          Mapped to Edge TPU
ADD                            8          Mapped to Edge TPU
PAD                            7          Mapped to Edge TPU
RESHAPE                        6          Mapped to Edge TPU
RESIZE_NEAREST_NEIGHBOR        2          Mapped to Edge TPU
MUL                            59         Mapped to Edge TPU
CONV_2D                        64         Mapped to Edge TPU
STRIDED_SLICE                  20         Mapped to Edge TPU
MAX_POOL_2D                    3          Mapped to Edge TPU
CONCATENATION                  18         Mapped to Edge TPU
SUB                            2          Mapped to Edge TPU
TRANSPOSE                      6          Mapped to Edge TPU
LOGISTIC                       58         Mapped to Edge TPU
QUANTIZE                       3          Mapped to Edge TPU
"""

# jveitchmichaelis/edgetpu-yolo, export.md: `edgetpu_compiler -sa`, compiler 16
CONSOLE_V16_OPERATIONS = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 3173 ms.

Input model: yolov5s-int8-224.tflite
Input size: 7.37MiB
Output model: yolov5s-int8-224_edgetpu.tflite
Output size: 8.34MiB
On-chip memory used for caching model parameters: 6.08MiB
On-chip memory remaining for caching model parameters: 0.00B
Off-chip memory used for streaming uncached model parameters: 1.70MiB
Number of Edge TPU subgraphs: 2
Total number of operations: 294
Operation log: yolov5s-int8-224_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 289
Number of operations that will run on CPU: 5

Operator                       Count      Status

RESIZE_NEAREST_NEIGHBOR        2          Mapped to Edge TPU
CONCATENATION                  1          Operation is otherwise supported, but not mapped due to some unspecified limitation
CONCATENATION                  17         Mapped to Edge TPU
STRIDED_SLICE                  13         Mapped to Edge TPU
TRANSPOSE                      1          Operation is otherwise supported, but not mapped due to some unspecified limitation
TRANSPOSE                      2          Mapped to Edge TPU
MAX_POOL_2D                    3          Mapped to Edge TPU
LOGISTIC                       62         Mapped to Edge TPU
QUANTIZE                       2          Operation is otherwise supported, but not mapped due to some unspecified limitation
QUANTIZE                       24         Mapped to Edge TPU
SUB                            3          Mapped to Edge TPU
PAD                            6          Mapped to Edge TPU
RESHAPE                        1          Operation is otherwise supported, but not mapped due to some unspecified limitation
RESHAPE                        5          Mapped to Edge TPU
ADD                            10         Mapped to Edge TPU
MUL                            80         Mapped to Edge TPU
CONV_2D                        62         Mapped to Edge TPU
Compilation child process completed within timeout period.
Compilation succeeded!
"""

# a yolov3-tiny compile script's README: `edgetpu_compiler -s`, compiler 15, cut after the first CONV_2D
CONSOLE_V15_OPERATIONS = """\
Edge TPU Compiler version 15.0.340273435

Model compiled successfully in 577 ms.

Input model: /home/yolo/yolov3-tiny_int8.tflite
Input size: 8.58MiB
Output model: /home/yolo/yolov3-tiny_int8_edgetpu.tflite
Output size: 8.70MiB
On-chip memory used for caching model parameters: 3.00KiB
On-chip memory remaining for caching model parameters: 7.67MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 36
Operation log: /home/yolo/yolov3-tiny_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 2
Number of operations that will run on CPU: 34

Operator                       Count      Status

MAX_POOL_2D                    6          More than one subgraph is not supported
QUANTIZE                       2          Operation is otherwise supported, but not mapped due to some unspecified limitation
QUANTIZE                       1          Mapped to Edge TPU
QUANTIZE                       1          More than one subgraph is not supported
CONV_2D                        1          Mapped to Edge TPU
CONV_2D                        12         More than one subgraph is not supported
RESIZE_NEAREST_NEIGHBOR        1          Operation version not supported
LEAKY_RELU                     11         Operation not supported
CONCATENATION                  1          More than one subgraph is not supported
"""

# compiler 16 without -s: no operator table
CONSOLE_V16 = (
    """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 141 ms.

Input model: 1.tflite
Input size: 5.11MiB
Output model: 1_edgetpu.tflite
Output size: 5.09MiB
On-chip memory used for caching model parameters: 18.00KiB
On-chip memory remaining for caching model parameters: 6.86MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 368
Operation log: 1_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 15
Number of operations that will run on CPU: 353
See the operation log file for individual operation details.
Compilation child process completed within timeout period.
"""
    + "Compilation succeeded! \n"
)

# google-coral/edgetpu#829: compiler 16 on a model with a dynamic batch.
CONSOLE_DYNAMIC_FAILED = (
    """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.
ERROR: Attempting to use a delegate that only supports static-sized tensors with a graph that has dynamic-sized tensors.
Compilation failed: Model failed in Tflite interpreter. Please ensure model can be loaded/run in Tflite interpreter.
Compilation child process completed within timeout period.
"""
    + "Compilation failed! \n"
)

# google-coral/edgetpu#211: compiler 14.
CONSOLE_INTERNAL_ERROR = (
    """\
Edge TPU Compiler version 14.1.317412892

"""
    + "Internal compiler error. Aborting! \n"
)


# --- the prediction --------------------------------------------------------------------------------------


def _index(data, name):
    """The index of the last operator called ``name``."""
    return [op.index for op in read_model(data).operators if op.name == name][-1]


def _edit_operator(data, index, edit):
    return repack(data, lambda model, schema: edit(model.subgraphs[0].operators[index], model, schema))


def _downstream(data, indices):
    """The operators that read, directly or through other operators, a tensor one of ``indices`` writes."""
    operators = read_model(data).operators
    written = {t for i in indices for t in operators[i].outputs}
    found = set()
    for op in operators:  # execution order is a topological order
        if op.index not in indices and written.intersection(op.inputs):
            found.add(op.index)
            written.update(op.outputs)
    return found


def assert_cut(data, failures):
    """``failures``: {operator index: (status, words of the reason)}, operators that read what the Edge TPU
    computes. They run on the CPU, every operator downstream of them in the data flow is cut off after them, and
    every other one (independent branches included) stays mapped. Returns the analysis."""
    analysis = analyse_edgetpu(data)
    cut = _downstream(data, failures)
    assert [v.index for v in analysis.verdicts] == list(range(len(analysis.verdicts)))
    for v in analysis.verdicts:
        if v.index in failures:
            status, words = failures[v.index]
            assert v.status == status and words in v.reason, v
        elif v.index in cut:
            assert v.status == AFTER_CPU_OP and "computes on the CPU from the Edge TPU's results" in v.reason, v
        else:
            assert (v.status, v.reason) == (MAPPED, ""), v
    assert analysis.first_cpu_op == analysis.verdicts[min(failures)]
    assert analysis.on_cpu == len(set(failures) | cut)
    assert analysis.problems == ()
    return analysis


def test_builder_models_are_fully_mapped(int8_model, model_name):
    data = int8_model(model_name)
    info = read_model(data)
    analysis = analyse_edgetpu(data, name=model_name)
    assert analysis.name == model_name and analysis.problems == ()
    assert [(v.index, v.op) for v in analysis.verdicts] == list(enumerate(info.ops))
    assert {v.status for v in analysis.verdicts} == {MAPPED}
    assert analysis.first_cpu_op is None
    assert (analysis.mapped, analysis.on_cpu) == (len(info.ops), 0)
    table = analysis.table()
    assert sum(row["count"] for row in table) == len(info.ops)
    assert [(row["operator"], row["count"], row["status"]) for row in table] == [
        (op, count, MAPPED) for op, count in info.op_counts.items()
    ]


def _fuse_relu(op, model, schema):
    op.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU


@pytest.mark.parametrize(("pool", "other"), [("AVERAGE_POOL_2D", "MAX_POOL_2D"), ("MAX_POOL_2D", "AVERAGE_POOL_2D")])
def test_fused_activation_on_pooling_cuts_there_and_the_other_branch_stays_mapped(int8_model, pool, other):
    """The zoo's two pools read the same convolution, side by side, and a CONCATENATION joins them: whichever
    pool runs later, the other is no reader of its output and stays on the Edge TPU; the CONCATENATION is cut."""
    data = int8_model("zoo")
    index = _index(data, pool)
    analysis = assert_cut(_edit_operator(data, index, _fuse_relu), {index: (UNMAPPED, "fused activation")})
    assert analysis.verdicts[_index(data, other)].mapped
    assert analysis.verdicts[_index(data, "CONCATENATION")].status == AFTER_CPU_OP


@pytest.mark.parametrize(("name", "convolution"), [("resnet", "CONV_2D"), ("mobilenetv2", "DEPTHWISE_CONV_2D")])
@pytest.mark.parametrize(("height", "width"), [(2, 1), (1, 3), (2, 2)])
def test_convolution_needs_equal_dilations(int8_model, name, convolution, height, width):
    data = int8_model(name)
    index = _index(data, convolution)

    def dilate(op, model, schema):
        op.builtinOptions.dilationHFactor, op.builtinOptions.dilationWFactor = height, width

    dilated = _edit_operator(data, index, dilate)
    if height == width:
        assert analyse_edgetpu(dilated).first_cpu_op is None
    else:
        assert_cut(dilated, {index: (UNMAPPED, "dilation")})


@pytest.mark.parametrize("dtype", ["FLOAT32", "INT32", "INT16"])
def test_activation_that_is_not_8_bit_cuts_where_it_is_written(int8_model, dtype):
    data = int8_model("resnet")
    info = read_model(data)
    add = next(op for op in info.operators if op.name == "ADD")
    tensor = info.tensors[add.outputs[0]]
    readers = [op.index for op in info.operators if tensor.index in op.inputs]
    assert readers and min(readers) > add.index
    broken = repack(
        data,
        lambda model, schema: setattr(
            model.subgraphs[0].tensors[tensor.index], "type", getattr(schema.TensorType, dtype)
        ),
    )
    # Its readers cannot map either, whatever the cut: they keep their own status.
    reason = (DATA_TYPE, f"{tensor.name} is {dtype.lower()}")
    assert_cut(broken, dict.fromkeys([add.index, *readers], reason))


@pytest.mark.parametrize(
    ("shape", "mapped"),
    [((2, 16, 16, 3), False), ((1, 2, 16, 16, 3), False), ((1, 1, 16, 16, 3), True), ((16, 16, 3), True)],
)
def test_activation_sized_above_1_outside_its_3_innermost_dimensions_has_unsupported_rank(int8_model, shape, mapped):
    """The input, read by operator 0 only; the convolutions' 4-D weights (8, 3, 3, 3) are constants, which the rule
    leaves alone (see test_builder_models_are_fully_mapped)."""
    data = int8_model("resnet")
    name = read_model(data).input.name
    broken = repack(
        data,
        lambda model, schema: setattr(model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]], "shape", list(shape)),
    )
    analysis = analyse_edgetpu(broken)
    if mapped:
        assert analysis.first_cpu_op is None
    else:
        # Operator 0 reads only the model's input, so the CPU runs it before the Edge TPU, which takes all the
        # rest (as Coral's compiler does with the CAST and QUANTIZE of movenet's input, test_coral_compiled.py).
        assert [(v.index, v.status) for v in analysis.verdicts if not v.mapped] == [(0, RANK)]
        assert f"{name} {list(shape)}" in analysis.verdicts[0].reason


def _rename(builtin, custom=None):
    def edit(op, model, schema):
        opcode = model.operatorCodes[op.opcodeIndex]
        opcode.builtinCode = opcode.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, builtin)
        opcode.customCode = custom

    return edit


@pytest.mark.parametrize(
    ("builtin", "custom", "name"), [("GATHER", None, "GATHER"), ("CUSTOM", b"MyOp", "CUSTOM:MyOp")]
)
def test_operator_not_on_the_list_is_not_supported(int8_model, builtin, custom, name):
    data = int8_model("zoo")
    index = _index(data, "RESHAPE")
    analysis = assert_cut(_edit_operator(data, index, _rename(builtin, custom)), {index: (NOT_SUPPORTED, name)})
    assert analysis.verdicts[index].op == name


def test_later_operator_that_cannot_map_keeps_its_own_status(int8_model):
    """Like the compiler's log, which lists an unsupported operator after the cut as unsupported."""
    data = int8_model("zoo")
    pool, reshape = _index(data, "AVERAGE_POOL_2D"), _index(data, "RESHAPE")
    data = _edit_operator(data, pool, _fuse_relu)
    data = _edit_operator(data, reshape, _rename("GATHER"))
    assert_cut(data, {pool: (UNMAPPED, "fused activation"), reshape: (NOT_SUPPORTED, "GATHER")})


@pytest.mark.parametrize(
    ("shape", "mapped"), [([1, 16000], True), ([1, 1, 12], True), ([1, 16001], False), ([1, 4, 3], False)]
)
def test_softmax_must_be_1d_with_at_most_16000_elements(int8_model, shape, mapped):
    data = int8_model("resnet")
    index = _index(data, "SOFTMAX")

    def reshape_input(op, model, schema):
        # A tensor of its own, so that the FULLY_CONNECTED writing the real one keeps its 1-D output.
        tensors = model.subgraphs[0].tensors
        tensor = copy.deepcopy(tensors[op.inputs[0]])
        tensor.shape, tensor.name = shape, b"softmax_input"
        tensors.append(tensor)
        op.inputs = [len(tensors) - 1]

    reshaped = _edit_operator(data, index, reshape_input)
    if mapped:
        assert analyse_edgetpu(reshaped).first_cpu_op is None
    else:
        assert_cut(reshaped, {index: (UNMAPPED, f"softmax input {shape}")})


@pytest.fixture(scope="session")
def strided_model():
    """A tiny int8 classifier that keeps every other row, ``x[:, ::2]``: a STRIDED_SLICE with strides (1, 2, 1, 1)."""
    import keras

    from tfscissor.quantize import quantize_int8

    keras.utils.set_random_seed(0)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same")(x[:, ::2])
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, activation="softmax")(x))
    images = np.random.default_rng(0).uniform(0, 255, (16, *INPUT_SHAPE)).astype(np.float32)
    return quantize_int8(model, images, num_samples=16)


def test_strided_slice_with_stride_2_cuts_there(strided_model):
    info = read_model(strided_model)
    (op,) = [op for op in info.operators if op.name == "STRIDED_SLICE"]
    assert info.tensors[op.inputs[3]].values().tolist() == [1, 2, 1, 1]
    assert_cut(strided_model, {op.index: (STRIDES, "strides")})


@pytest.mark.parametrize(("ellipsis_mask", "mapped"), [(0, True), (1, False)])
def test_strided_slice_with_unit_strides_maps_without_an_ellipsis(strided_model, ellipsis_mask, mapped):
    index = _index(strided_model, "STRIDED_SLICE")

    def unit_strides(op, model, schema):
        buffer = schema.BufferT()
        buffer.data = np.ones(4, "<i4").view(np.uint8)
        model.buffers.append(buffer)
        model.subgraphs[0].tensors[op.inputs[3]].buffer = len(model.buffers) - 1
        op.builtinOptions.ellipsisMask = ellipsis_mask

    edited = _edit_operator(strided_model, index, unit_strides)
    if mapped:
        assert analyse_edgetpu(edited).first_cpu_op is None
    else:
        assert_cut(edited, {index: (UNMAPPED, "ellipsis")})


def test_dynamic_batch_is_a_problem_not_an_operator_status(int8_model):
    data = int8_model("resnet")
    name = read_model(data).input.name
    dynamic = repack(
        data,
        lambda model, schema: setattr(
            model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]], "shapeSignature", [-1, *INPUT_SHAPE]
        ),
    )
    analysis = analyse_edgetpu(dynamic)
    assert {v.status for v in analysis.verdicts} == {MAPPED}
    (problem,) = analysis.problems
    assert "dynamic" in problem and name in problem
    assert analysis.to_dict()["problems"] == [problem]


def test_extra_subgraphs_are_a_problem_and_only_the_main_one_is_analysed(int8_model):
    data = int8_model("plain")
    twice = repack(data, lambda model, schema: model.subgraphs.append(copy.deepcopy(model.subgraphs[0])))
    analysis = analyse_edgetpu(twice)
    assert len(analysis.verdicts) == len(read_model(data).operators)
    (problem,) = analysis.problems
    assert "2 subgraphs" in problem


def test_table_groups_operator_and_status_in_order_of_first_appearance(int8_model):
    data = int8_model("resnet")
    ops = ("CONV_2D",) * 3 + ("ADD",) + ("CONV_2D",) * 3 + ("ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX")
    assert read_model(data).ops == ops
    broken = _edit_operator(data, 6, lambda op, *_: setattr(op.builtinOptions, "dilationHFactor", 2))
    table = [(r["operator"], r["count"], r["status"]) for r in analyse_edgetpu(broken).table()]
    assert table == [
        ("CONV_2D", 5, MAPPED),
        ("ADD", 1, MAPPED),
        ("CONV_2D", 1, UNMAPPED),
        ("ADD", 1, AFTER_CPU_OP),
        ("MEAN", 1, AFTER_CPU_OP),
        ("FULLY_CONNECTED", 1, AFTER_CPU_OP),
        ("SOFTMAX", 1, AFTER_CPU_OP),
    ]


@pytest.mark.parametrize("cut", [False, True])
def test_to_dict_is_json_and_agrees_with_the_table(int8_model, cut):
    data = int8_model("zoo")
    if cut:
        data = _edit_operator(data, _index(data, "RESHAPE"), _rename("GATHER"))
    analysis = analyse_edgetpu(data, name="zoo")
    summary = json.loads(json.dumps(analysis.to_dict()))
    table = analysis.table()
    assert summary["name"] == "zoo" and summary["table"] == table and summary["problems"] == []
    assert summary["operations"] == sum(r["count"] for r in table) == len(read_model(data).ops)
    assert summary["mapped"] == sum(r["count"] for r in table if r["status"] == MAPPED)
    assert summary["on_cpu"] == summary["operations"] - summary["mapped"]
    first = analysis.first_cpu_op
    expected = {"index": first.index, "op": first.op, "status": first.status, "reason": first.reason} if cut else None
    assert summary["first_cpu_op"] == expected


# --- the compiler's output -------------------------------------------------------------------------------

TINY_YOLO_ROWS = [
    ("CONCATENATION", 1, AFTER_CPU_OP),
    ("MAX_POOL_2D", 6, MAPPED),
    ("RESIZE_NEAREST_NEIGHBOR", 1, VERSION_NOT_SUPPORTED),
    ("CONV_2D", 11, MAPPED),
    ("CONV_2D", 2, AFTER_CPU_OP),
    ("QUANTIZE", 1, UNMAPPED),
    ("QUANTIZE", 1, AFTER_CPU_OP),
    ("QUANTIZE", 2, MAPPED),
]
YOLOV8_ROWS = [
    (op, count, MAPPED)
    for op, count in [
        ("SOFTMAX", 1),
        ("ADD", 8),
        ("PAD", 7),
        ("RESHAPE", 6),
        ("RESIZE_NEAREST_NEIGHBOR", 2),
        ("MUL", 59),
        ("CONV_2D", 64),
        ("STRIDED_SLICE", 20),
        ("MAX_POOL_2D", 3),
        ("CONCATENATION", 18),
        ("SUB", 2),
        ("TRANSPOSE", 6),
        ("LOGISTIC", 58),
        ("QUANTIZE", 3),
    ]
]
V16_OPERATIONS_ROWS = [
    ("RESIZE_NEAREST_NEIGHBOR", 2, MAPPED),
    ("CONCATENATION", 1, UNMAPPED),
    ("CONCATENATION", 17, MAPPED),
    ("STRIDED_SLICE", 13, MAPPED),
    ("TRANSPOSE", 1, UNMAPPED),
    ("TRANSPOSE", 2, MAPPED),
    ("MAX_POOL_2D", 3, MAPPED),
    ("LOGISTIC", 62, MAPPED),
    ("QUANTIZE", 2, UNMAPPED),
    ("QUANTIZE", 24, MAPPED),
    ("SUB", 3, MAPPED),
    ("PAD", 6, MAPPED),
    ("RESHAPE", 1, UNMAPPED),
    ("RESHAPE", 5, MAPPED),
    ("ADD", 10, MAPPED),
    ("MUL", 80, MAPPED),
    ("CONV_2D", 62, MAPPED),
]
V15_OPERATIONS_ROWS = [
    ("MAX_POOL_2D", 6, AFTER_CPU_OP),
    ("QUANTIZE", 2, UNMAPPED),
    ("QUANTIZE", 1, MAPPED),
    ("QUANTIZE", 1, AFTER_CPU_OP),
    ("CONV_2D", 1, MAPPED),
    ("CONV_2D", 12, AFTER_CPU_OP),
    ("RESIZE_NEAREST_NEIGHBOR", 1, VERSION_NOT_SUPPORTED),
    ("LEAKY_RELU", 11, NOT_SUPPORTED),
    ("CONCATENATION", 1, AFTER_CPU_OP),
]


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        (LOG_TINY_YOLO, TINY_YOLO_ROWS),
        (LOG_YOLOV8, YOLOV8_ROWS),
        (CONSOLE_V16_OPERATIONS, V16_OPERATIONS_ROWS),
        (CONSOLE_V15_OPERATIONS, V15_OPERATIONS_ROWS),
        (CONSOLE_V16, []),
        (CONSOLE_DYNAMIC_FAILED, []),
    ],
)
def test_operation_log_rows_in_order(text, rows):
    parsed = parse_operation_log(text)
    assert [(r["operator"], r["count"], r["status"]) for r in parsed] == rows
    assert all(set(r) == {"operator", "count", "status"} for r in parsed)


def _mib(size):
    return round(size * 2**20)


@pytest.mark.parametrize(
    ("text", "version", "model"),
    [
        (
            CONSOLE_V16_OPERATIONS,
            "16.0.384591198",
            {
                "input": "yolov5s-int8-224.tflite",
                "output": "yolov5s-int8-224_edgetpu.tflite",
                "on_chip_bytes": _mib(6.08),
                "on_chip_remaining_bytes": 0,
                "off_chip_bytes": _mib(1.70),
                "subgraphs": 2,
                "operations": 294,
            },
        ),
        (
            CONSOLE_V15_OPERATIONS,
            "15.0.340273435",
            {
                "input": "/home/yolo/yolov3-tiny_int8.tflite",
                "output": "/home/yolo/yolov3-tiny_int8_edgetpu.tflite",
                "on_chip_bytes": 3072,
                "on_chip_remaining_bytes": _mib(7.67),
                "off_chip_bytes": 0,
                "subgraphs": 1,
                "operations": 36,
            },
        ),
        (
            CONSOLE_V16,
            "16.0.384591198",
            {
                "input": "1.tflite",
                "output": "1_edgetpu.tflite",
                "on_chip_bytes": 18 * 1024,
                "on_chip_remaining_bytes": _mib(6.86),
                "off_chip_bytes": 0,
                "subgraphs": 1,
                "operations": 368,
            },
        ),
    ],
)
def test_compiler_output_fields_in_bytes_and_counts(text, version, model):
    parsed = parse_compiler_output(text)
    assert parsed == {"version": version, "models": [model], "errors": []}
    assert all(type(value) is int for key, value in parsed["models"][0].items() if key not in ("input", "output"))


@pytest.mark.parametrize(
    ("text", "version", "errors"),
    [
        (
            CONSOLE_DYNAMIC_FAILED,
            "16.0.384591198",
            [
                "ERROR: Attempting to use a delegate that only supports static-sized tensors with a graph that has "
                "dynamic-sized tensors.",
                "Compilation failed: Model failed in Tflite interpreter. Please ensure model can be loaded/run in "
                "Tflite interpreter.",
                "Compilation failed!",
            ],
        ),
        (CONSOLE_INTERNAL_ERROR, "14.1.317412892", ["Internal compiler error. Aborting!"]),
    ],
)
def test_compiler_failure_lines_are_collected(text, version, errors):
    assert parse_compiler_output(text) == {"version": version, "models": [], "errors": errors}


# --- finding and running the compiler --------------------------------------------------------------------


def test_missing_compiler_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for attempt in (find_compiler, lambda: compile_models({"m": b""})):
        with pytest.raises(CompilerMissing) as error:
            attempt()
        message = str(error.value)
        assert "edgetpu_compiler" in message and "apt-get install edgetpu-compiler" in message
        assert "--compiler" in message


def test_compiler_path_must_be_an_executable_file(tmp_path, fake_compiler):
    """A wrong --compiler is the user's request to fix (UsageError), not a compiler to install."""
    script = tmp_path / "compiler.sh"
    script.write_text("#!/bin/sh\n")
    for path in (script, tmp_path, tmp_path / "absent"):
        with pytest.raises(UsageError, match="edgetpu_compiler") as error:
            find_compiler(path)
        assert str(path) in str(error.value)
        with pytest.raises(UsageError):
            compile_models({"m": b""}, compiler=path)
    assert find_compiler(fake_compiler.path) == str(fake_compiler.path)


def test_compiler_on_path_is_found_and_run(fake_compiler, monkeypatch, int8_model):
    monkeypatch.setenv("PATH", str(fake_compiler.path.parent))
    assert find_compiler() == str(fake_compiler.path)
    _, compiled = compile_models({"plain": int8_model("plain")})
    assert list(compiled) == ["plain"] and compiled["plain"].tflite == int8_model("plain") + MARKER


def test_models_are_co_compiled_in_one_call_and_come_back_parsed(fake_compiler, int8_model):
    models = {"zoo": int8_model("zoo"), "resnet": int8_model("resnet")}
    console, compiled = compile_models(models, compiler=fake_compiler.path, timeout=42)
    (argv,) = fake_compiler.calls()
    assert [arg for arg in argv if arg.endswith(".tflite")] == ["zoo.tflite", "resnet.tflite"]
    assert "--show_operations" in argv and ("--timeout_sec", "42") in pairwise(argv)
    assert parse_compiler_output(console)["version"] == "16.0.384591198"
    assert list(compiled) == ["zoo", "resnet"]
    for position, (name, data) in enumerate(models.items()):
        result, info = compiled[name], read_model(data)
        assert result.name == name and result.tflite == data + MARKER
        assert f"Input: {name}.tflite" in result.log
        assert [(r["operator"], r["count"], r["status"]) for r in result.rows] == [
            (op, count, MAPPED) for op, count in info.op_counts.items()
        ]
        assert result.mapped == result.operations == len(info.ops)
        # The fake gives model i (in command-line order) {i + 1}.50KiB on chip.
        assert result.on_chip_bytes == (position + 1) * 1024 + 512
        assert (result.on_chip_remaining_bytes, result.off_chip_bytes, result.subgraphs) == (_mib(7.67), 0, 1)
        summary = json.loads(json.dumps(result.to_dict()))
        assert summary["bytes"] == len(data) + len(MARKER) and summary["rows"] == list(result.rows)


def test_failing_compiler_raises_its_error_line(fake_compiler, monkeypatch, int8_model):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "fail")
    with pytest.raises(
        ModelError, match="ERROR: Attempting to use a delegate that only supports static-sized"
    ) as error:
        compile_models({"plain": int8_model("plain")}, compiler=fake_compiler.path)
    assert "Compilation failed: Model failed in Tflite interpreter" in str(error.value)


def test_compiler_that_writes_no_model_raises(fake_compiler, monkeypatch, int8_model):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "no_output")
    with pytest.raises(ModelError, match="edgetpu_compiler"):
        compile_models({"plain": int8_model("plain")}, compiler=fake_compiler.path)
    assert len(fake_compiler.calls()) == 1


@pytest.mark.parametrize("name", ["a/b", "my model", ""])
def test_model_name_unfit_for_a_file_name_is_refused(fake_compiler, int8_model, name):
    with pytest.raises(UsageError, match="model name"):
        compile_models({"plain": int8_model("plain"), name: int8_model("plain")}, compiler=fake_compiler.path)
    assert fake_compiler.calls() == []


def test_model_name_never_reaches_the_compiler_as_an_option(fake_compiler, int8_model):
    """A file argument starting with '-' is read as a flag by a command-line parser, Coral's included."""
    with contextlib.suppress(UsageError):
        compile_models({"-s": int8_model("plain")}, compiler=fake_compiler.path)
    assert not [
        arg for argv in fake_compiler.calls() for arg in argv if arg.startswith("-") and arg.endswith(".tflite")
    ]


COMPILER_ABSENT = (
    "edgetpu_compiler is not installed: Coral ships it for x86-64 Debian/Ubuntu only (apt-get install edgetpu-compiler)"
)


def test_real_compiler_maps_what_the_analysis_predicts(int8_model):
    if shutil.which("edgetpu_compiler") is None:
        pytest.skip(reason=COMPILER_ABSENT)
    data = int8_model("resnet")
    _, compiled = compile_models({"resnet": data})

    def counts(rows):
        totals = Counter()
        for row in rows:
            totals[row["operator"], row["status"]] += row["count"]
        return totals

    assert counts(compiled["resnet"].rows) == counts(analyse_edgetpu(data).table())
    assert counts(compiled["resnet"].rows) == Counter({(op, MAPPED): n for op, n in read_model(data).op_counts.items()})
    assert compiled["resnet"].subgraphs == 1
