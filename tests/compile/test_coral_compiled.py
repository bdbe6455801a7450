"""The predicted Edge TPU mapping against what Coral's edgetpu_compiler 16 made of six of Coral's own test models.

shared/coral-compiled (see its README) holds each CPU model beside the compiler's output. A compiled model folds
every mapped operator into one edgetpu-custom-op and keeps the operators left on the CPU as they were, writing
the same tensors: an operator of the CPU model whose outputs the compiled model still writes with an operator of
its own ran on the CPU. The expected mapping is read that way from each compiled file, and the prediction, made
from the CPU model alone, must equal it operator by operator.
"""

import json
from pathlib import Path

import pytest

from tests.compile.helpers import repack
from tfscissor.compile.edgetpu import analyse_edgetpu
from tfscissor.deploy.flatbuffer import read_model

CORAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "coral-compiled"
pytestmark = pytest.mark.skipif(not CORAL.is_dir(), reason="../shared/coral-compiled is absent beside the repository")

EDGETPU_OP = "CUSTOM:edgetpu-custom-op"
MAPPED = "Mapped to Edge TPU"
AFTER_CPU_OP = "More than one subgraph is not supported"
UNMAPPED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
NOT_SUPPORTED = "Operation not supported"
DATA_TYPE = "Operation is working on an unsupported data type"
STATUSES = {MAPPED, AFTER_CPU_OP, UNMAPPED, NOT_SUPPORTED, DATA_TYPE}

# Each pair and how many of its operators the compiler mapped: a check that the reading of the compiled file
# below finds what it should.
PAIRS = {
    "mobilenet_v1_0.25_128_quant": 31,
    "split_concat": 3,
    "posenet_mobilenet_v1_075_353_481_16_quant_decoder": 37,
    "deeplabv3_mnv2_dm05_pascal_quant": 64,
    "keras_lstm_mnist_ptq": 6,
    "movenet_single_pose_lightning_ptq": 98,
}
DEEPLAB, LSTM, MOVENET = "deeplabv3_mnv2_dm05_pascal_quant", "keras_lstm_mnist_ptq", "movenet_single_pose_lightning_ptq"


def _model(name):
    return (CORAL / f"{name}.tflite").read_bytes()


def compiled_mapping(name):
    """Per operator of the CPU model, in execution order: whether the compiler mapped it."""
    cpu = read_model(CORAL / f"{name}.tflite")
    compiled = read_model(CORAL / f"{name}_edgetpu.tflite")
    assert compiled.ops.count(EDGETPU_OP) == 1
    left = [op for op in compiled.operators if op.name != EDGETPU_OP]
    written = {compiled.tensors[t].name for op in left for t in op.outputs}
    mapping = [not written.intersection(cpu.tensors[t].name for t in op.outputs) for op in cpu.operators]
    # Each operator left on the CPU is found once in the CPU model, under the same name.
    on_cpu = [op.name for op, mapped in zip(cpu.operators, mapping, strict=True) if not mapped]
    assert sorted(on_cpu) == sorted(op.name for op in left)
    return mapping


@pytest.mark.parametrize(("name", "mapped"), PAIRS.items())
def test_prediction_maps_each_operator_as_the_compiler_did(name, mapped):
    expected = compiled_mapping(name)
    analysis = analyse_edgetpu(_model(name), name=name)
    wrong = [(v.index, v.op, v.status) for v, m in zip(analysis.verdicts, expected, strict=True) if v.mapped != m]
    assert wrong == []
    assert sum(expected) == analysis.mapped == mapped
    assert {v.status for v in analysis.verdicts} <= STATUSES
    assert analysis.problems == ()


def _off_tpu(analysis):
    return [(r["operator"], r["count"], r["status"]) for r in analysis.table() if r["status"] != MAPPED]


def test_deeplab_resize_of_one_pixel_cuts_its_branch_and_what_joins_it():
    """The image-pooling branch ends in a 1x1 map resized to 33x33 with aligned corners, which the Edge TPU cannot
    take; the QUANTIZE, CONCATENATION and convolutions after it follow it to the CPU, and ARG_MAX is off the list.
    The rest of the model, the ASPP branch the CONCATENATION also reads included, stays mapped."""
    analysis = analyse_edgetpu(_model(DEEPLAB))
    assert _off_tpu(analysis) == [
        ("RESIZE_BILINEAR", 1, UNMAPPED),
        ("QUANTIZE", 1, AFTER_CPU_OP),
        ("CONCATENATION", 1, AFTER_CPU_OP),
        ("CONV_2D", 2, AFTER_CPU_OP),
        ("RESIZE_BILINEAR", 2, AFTER_CPU_OP),
        ("ARG_MAX", 1, NOT_SUPPORTED),
    ]
    resize = analysis.first_cpu_op
    assert resize.op == "RESIZE_BILINEAR" and "[1, 1] to [33, 33] with aligned corners" in resize.reason
    assert all(
        f"RESIZE_BILINEAR (operator {resize.index})" in v.reason for v in analysis.verdicts if v.status == AFTER_CPU_OP
    )


def _resize_options(index, align_corners, half_pixel_centers):
    def edit(model, schema):
        options = model.subgraphs[0].operators[index].builtinOptions
        options.alignCorners, options.halfPixelCenters = align_corners, half_pixel_centers

    return edit


def test_resize_by_a_whole_factor_maps():
    """Without aligned corners, 1 -> 33 pixels is a 33x upscale: deeplab then maps all but its ARG_MAX."""
    data = _model(DEEPLAB)
    resize = analyse_edgetpu(data).first_cpu_op.index
    analysis = analyse_edgetpu(repack(data, _resize_options(resize, False, False)))
    assert _off_tpu(analysis) == [("ARG_MAX", 1, NOT_SUPPORTED)]


def test_resize_with_aligned_corners_off_a_whole_step_is_not_mapped():
    """movenet's first 2x upscale (6 -> 12 pixels, half-pixel centres, mapped) with aligned corners instead: a step
    of 5/11 of an input pixel. It and what follows from it leave the Edge TPU; the stem before it stays."""
    data = _model(MOVENET)
    info = read_model(data)
    resize = next(op.index for op in info.operators if op.name == "RESIZE_BILINEAR")
    analysis = analyse_edgetpu(repack(data, _resize_options(resize, True, False)))
    verdict = analysis.verdicts[resize]
    assert verdict.status == UNMAPPED and "[6, 6] to [12, 12] with aligned corners" in verdict.reason
    assert analysis.verdicts[resize + 1].status == AFTER_CPU_OP
    assert all(v.mapped for v in analysis.verdicts[2:resize])


def test_movenet_input_conversion_runs_on_the_cpu_before_the_edge_tpu():
    """movenet takes uint8 pixels, casts them to float and quantises them to int8: the CPU does that first, and
    the Edge TPU subgraph starts at the int8 tensor; only its post-processing comes back to the CPU."""
    analysis = analyse_edgetpu(_model(MOVENET))
    first = analysis.verdicts[:3]
    assert [(v.op, v.status) for v in first] == [("CAST", NOT_SUPPORTED), ("QUANTIZE", DATA_TYPE), ("SUB", MAPPED)]
    assert "float32" in first[1].reason


def test_lstm_keeps_only_its_cell_state_in_int16():
    """Compiler 16 maps the integer LSTM, whose cell state is int16. Its other state, the output, is int8: made
    int16, it is an unsupported data type, and the operators after the LSTM follow it to the CPU."""
    data = _model(LSTM)
    info = read_model(data)
    (lstm,) = [op for op in info.operators if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    cell, output_state = info.tensors[lstm.inputs[19]], info.tensors[lstm.inputs[18]]
    assert (cell.dtype, output_state.dtype) == ("int16", "int8")
    assert analyse_edgetpu(data).first_cpu_op is None

    def widen(model, schema):
        model.subgraphs[0].tensors[output_state.index].type = schema.TensorType.INT16

    analysis = analyse_edgetpu(repack(data, widen))
    verdict = analysis.verdicts[lstm.index]
    assert verdict.status == DATA_TYPE and f"{output_state.name} is int16" in verdict.reason
    assert [v.status for v in analysis.verdicts[lstm.index + 1 :]] == [AFTER_CPU_OP] * (
        len(info.operators) - lstm.index - 1
    )
    assert all(v.mapped for v in analysis.verdicts[: lstm.index])


def invoke(*args):
    from click.testing import CliRunner

    from tfscissor.cli import cli

    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


def test_compile_for_the_edge_tpu_takes_a_uint8_model(tmp_path, monkeypatch):
    """Coral's own models are uint8 (legacy quantisation), and the compiler takes them: so does the command."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler: the prediction is written, and the command exits 1
    model = CORAL / "mobilenet_v1_0.25_128_quant.tflite"
    result = invoke("compile", model, "--target", "edgetpu", "-o", tmp_path / "tpu")
    assert result.exit_code == 1 and "edgetpu_compiler is not on PATH" in result.output, result.output
    assert "classifier: 31 of 31 operations on the Edge TPU (predicted)" in result.output
    manifest = json.loads((tmp_path / "tpu" / "manifest.json").read_text())
    assert manifest["models"]["classifier"]["input"]["dtype"] == "uint8"
    assert manifest["edgetpu"]["predicted"]["classifier"]["on_cpu"] == 0


def test_bench_on_the_cpu_names_the_edge_tpu_for_a_compiled_model():
    model = CORAL / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    result = invoke("bench", model, "--device", "cpu", "--runs", "1")
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "is compiled for the Edge TPU" in line and "--device usb" in line and "CPU .tflite" in line
