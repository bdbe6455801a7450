"""The Edge TPU: which operators of an 8-bit ``.tflite`` (int8, or uint8 as Coral's own models are) it runs,
predicted from the flatbuffer alone.

The prediction applies Coral's model requirements and supported-operation table (as of compiler 16 and its
default runtime 14) to each operator:

* every tensor an operator reads or writes is 8-bit (int32 only for constants: biases, shapes, axes; int16 only
  for the cell state and layer-norm weights of an integer LSTM, which compiler 16 maps);
* a tensor of more than 3 dimensions has sizes above 1 only in its 3 innermost ones;
* the operator is on the supported list and meets its constraints (no fused activation on pooling, equal
  dilations, a 1-D softmax of at most 16,000 elements, unit strides in a strided slice, a resize by a whole
  factor, ...).

The compiler maps one Edge TPU subgraph, and it follows the data flow, not the execution order: an operator
that cannot map runs on the CPU, and so does every operator that reads, directly or through other operators, a
tensor the CPU computed from the Edge TPU's results (mapping it would need a second Edge TPU subgraph).
Independent branches stay mapped, and operators the CPU runs before the Edge TPU (a CAST and QUANTIZE of a
float input) do not cut what follows them. Six models Coral compiled with compiler 16 (shared/coral-compiled)
are mapped exactly so, operator by operator (tests/compile/test_coral_compiled.py).

The analysis reports each operator with the compiler's own status strings ("Mapped to Edge TPU", "More than one
subgraph is not supported", ...), so its table reads line for line like the compiler's log, plus a reason in
plain words. Whole-model problems that make the compiler fail (dynamic tensor shapes) are listed apart.

:mod:`tfscissor.compile.edgetpu_compiler` runs the real compiler and reads what it says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tfscissor.deploy.flatbuffer import read_model

__all__ = ["MAPPED", "EdgeTPUAnalysis", "OpVerdict", "analyse_edgetpu"]

# The compiler's status strings, as its operation log prints them.
MAPPED = "Mapped to Edge TPU"
AFTER_CPU_OP = "More than one subgraph is not supported"
NOT_SUPPORTED = "Operation not supported"
DATA_TYPE = "Operation is working on an unsupported data type"
RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
UNMAPPED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
STRIDES = "Only Strided-Slice with unitary strides supported"

_SOFTMAX_MAX = 16_000


@dataclass(frozen=True)
class OpVerdict:
    """One operator: its position in execution order, name, predicted status and why."""

    index: int
    op: str
    status: str
    reason: str = ""

    @property
    def mapped(self):
        return self.status == MAPPED


@dataclass(frozen=True)
class EdgeTPUAnalysis:
    """The predicted mapping of one model: a verdict per operator, and the problems that stop compilation."""

    name: str
    verdicts: tuple
    problems: tuple = ()

    @property
    def mapped(self):
        return sum(v.mapped for v in self.verdicts)

    @property
    def on_cpu(self):
        return len(self.verdicts) - self.mapped

    @property
    def first_cpu_op(self):
        """The first operator, in execution order, that runs on the CPU, or None when the Edge TPU runs all."""
        return next((v for v in self.verdicts if not v.mapped), None)

    def table(self):
        """Rows of operator, count, status and reasons, one per distinct (operator, status) in order of first
        appearance: the layout of the compiler's operation log (the distinct reasons joined by '; ')."""
        rows = {}
        for v in self.verdicts:
            row = rows.setdefault((v.op, v.status), {"operator": v.op, "count": 0, "status": v.status, "reason": []})
            row["count"] += 1
            if v.reason and v.reason not in row["reason"]:
                row["reason"].append(v.reason)
        return [{**row, "reason": "; ".join(row["reason"])} for row in rows.values()]

    def to_dict(self):
        return {
            "name": self.name,
            "operations": len(self.verdicts),
            "mapped": self.mapped,
            "on_cpu": self.on_cpu,
            "first_cpu_op": asdict(self.first_cpu_op) if self.first_cpu_op else None,
            "problems": list(self.problems),
            "table": self.table(),
        }


# --- operator rules ----------------------------------------------------------------------------------------

# The supported builtin operators -> their constraint check, or None when only the general checks apply. A check
# takes the operator and the model's tensors and returns (status, reason) when the Edge TPU cannot take it.
SUPPORTED = {}


def _rule(*ops):
    def register(check):
        for op in ops:
            SUPPORTED[op] = check
        return check

    return register


for _op in (
    "ADD",
    "EXPAND_DIMS",
    "L2_NORMALIZATION",
    "LOGISTIC",
    "MAXIMUM",
    "MINIMUM",
    "MUL",
    "QUANTIZE",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "RSQRT",
    "SLICE",
    "SPACE_TO_DEPTH",
    "SQUARED_DIFFERENCE",
    "SQUEEZE",
    "SUB",
    "TANH",
    "TRANSPOSE",
    "TRANSPOSE_CONV",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
):
    SUPPORTED[_op] = None


def _constant(tensors, index):
    tensor = tensors[index] if index >= 0 else None
    return tensor.values() if tensor is not None and tensor.constant and tensor.data else None


def _axes(tensors, op, position, rank):
    values = _constant(tensors, op.inputs[position])
    return None if values is None else {int(a) % rank for a in np.ravel(values)}


@_rule("AVERAGE_POOL_2D", "MAX_POOL_2D")
def _pool(op, tensors):
    if op.options.get("fusedActivationFunction", 0):
        return UNMAPPED, "fused activation function on pooling"
    return None


@_rule("CONCATENATION")
def _concatenation(op, tensors):
    if op.options.get("fusedActivationFunction", 0):
        return UNMAPPED, "fused activation function on concatenation"
    constants = {i: _constant(tensors, i) for i in op.inputs}
    constants = {i: values for i, values in constants.items() if values is not None}
    # A real zero is the zero point in the int8 encoding.
    zeros = all(np.all(values == tensors[i].quantization[1]) for i, values in constants.items())
    if constants and (len(op.inputs) != 2 or not zeros):
        return UNMAPPED, "a constant input is allowed only as one of 2 inputs and all zeros (zero padding)"
    return None


@_rule("CONV_2D", "DEPTHWISE_CONV_2D")
def _convolution(op, tensors):
    if op.options.get("dilationHFactor", 1) != op.options.get("dilationWFactor", 1):
        return UNMAPPED, "different dilations in x and y"
    return None


@_rule("FULLY_CONNECTED")
def _fully_connected(op, tensors):
    if op.options.get("weightsFormat", 0):
        return UNMAPPED, "weights not in the default format"
    if sum(d > 1 for d in tensors[op.outputs[0]].shape) > 1:
        return UNMAPPED, "output is not one-dimensional"
    return None


@_rule("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN")
def _reduction(op, tensors):
    shape = tensors[op.inputs[0]].shape
    axes = _axes(tensors, op, 1, len(shape))
    if axes is None:
        return UNMAPPED, "reduction axes are not constant"
    if 0 in axes and len(shape) > 1:
        return UNMAPPED, "reduces the batch dimension"
    if op.name == "MEAN" and len(shape) == 4 and 3 in axes and shape[3] % 4:
        return UNMAPPED, f"a reduction over channels needs a multiple of 4 channels, not {shape[3]}"
    return None


@_rule("PACK")
def _pack(op, tensors):
    return (UNMAPPED, "packs along the batch dimension") if op.options.get("axis", 0) == 0 else None


@_rule("PAD")
def _pad(op, tensors):
    paddings = _constant(tensors, op.inputs[1])
    if paddings is None:
        return UNMAPPED, "paddings are not constant"
    return (UNMAPPED, "pads the batch dimension") if np.any(paddings[0] != 0) else None


@_rule("SPLIT")
def _split(op, tensors):
    rank = len(tensors[op.inputs[1]].shape)
    axes = _axes(tensors, op, 0, rank)
    return (UNMAPPED, "splits the batch dimension") if axes is None or 0 in axes else None


@_rule("PRELU")
def _prelu(op, tensors):
    if sum(d > 1 for d in tensors[op.inputs[1]].shape) > 1:
        return UNMAPPED, "alpha varies along more than the innermost dimension (use shared_axes=[1, 2])"
    return None


@_rule("RESHAPE")
def _reshape(op, tensors):
    # Coral: "certain reshapes might not be mapped for large tensor sizes", with no sizes given; predicted mapped.
    return None


def _whole_step(before, after, align_corners):
    """True when resizing ``before`` pixels to ``after`` keeps the output grid on whole steps of the input's."""
    if before == after:
        return True
    if after < before:
        return False
    if align_corners:
        # The corner pixels' centres coincide, so the step is (before - 1) / (after - 1): a single input pixel
        # has no step to divide.
        return before > 1 and (after - 1) % (before - 1) == 0
    return after % before == 0


@_rule("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
def _resize(op, tensors):
    # Coral maps a resize "depending on input/output size ... to avoid loss in precision", without the sizes. An
    # upscale by a whole factor loses nothing: movenet's 2x upscales (half-pixel centres) are mapped; deeplab's
    # 1 -> 33 pixels with aligned corners is not.
    before, after = tensors[op.inputs[0]].shape, tensors[op.outputs[0]].shape
    if len(before) != 4 or len(after) != 4:
        return None
    align_corners = bool(op.options.get("alignCorners", False))
    if all(_whole_step(b, a, align_corners) for b, a in zip(before[1:3], after[1:3], strict=True)):
        return None
    corners = " with aligned corners" if align_corners else ""
    return UNMAPPED, f"resize of {list(before[1:3])} to {list(after[1:3])}{corners} is not an upscale by a whole factor"


@_rule("SOFTMAX")
def _softmax(op, tensors):
    shape = tensors[op.inputs[0]].shape
    if sum(d > 1 for d in shape) > 1 or int(np.prod(shape)) > _SOFTMAX_MAX:
        return UNMAPPED, f"softmax input {list(shape)} is not 1-D with at most {_SOFTMAX_MAX:,} elements"
    return None


@_rule("STRIDED_SLICE")
def _strided_slice(op, tensors):
    strides = _constant(tensors, op.inputs[3])
    if strides is None or np.any(strides != 1):
        return STRIDES, "strides other than 1"
    if op.options.get("ellipsisMask", 0) or op.options.get("newAxisMask", 0):
        return UNMAPPED, "ellipsis or new-axis mask"
    return None


# --- the analysis ------------------------------------------------------------------------------------------

# Inputs that an operator's quantised form keeps in int16: TFLite's integer LSTM holds its cell state (input 19)
# and layer-norm weights (20-23) in int16, and compiler 16 maps that LSTM (keras_lstm_mnist in coral-compiled).
_INT16_INPUTS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": range(19, 24)}


def _general(op, tensors):
    """The checks every operator must pass: 8-bit tensors, and activations with sizes above 1 only in their 3
    innermost dimensions."""
    used = [tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0]
    wide = {op.inputs[p] for p in _INT16_INPUTS.get(op.name, ()) if p < len(op.inputs)}
    for tensor in used:
        allowed = ("int8", "uint8", "int32") if tensor.constant else ("int8", "uint8")
        if tensor.index in wide:
            allowed += ("int16",)
        if tensor.dtype not in allowed:
            return DATA_TYPE, f"tensor {tensor.name} is {tensor.dtype}"
    for tensor in used:
        # Weights are laid out by the compiler; the rule is about the data flowing between operators.
        if not tensor.constant and len(tensor.shape) > 3 and any(d > 1 for d in tensor.shape[:-3]):
            return (
                RANK,
                f"tensor {tensor.name} {list(tensor.shape)} has sizes above 1 outside its 3 innermost dimensions",
            )
    return None


def analyse_edgetpu(model, *, name=None):
    """Predict how ``model`` (``.tflite`` bytes or path) maps to the Edge TPU: an :class:`EdgeTPUAnalysis`."""
    info = read_model(model, name=name)
    tensors = info.tensors
    problems = []
    dynamic = [t.name for t in tensors if t.dynamic]
    if dynamic:
        problems.append(
            f"{len(dynamic)} tensors have a dynamic shape (first: {dynamic[0]}); the compiler refuses the model: "
            "convert with a fixed batch of 1 (`tfscissor quantize` does)"
        )
    if info.num_subgraphs > 1:
        problems.append(f"{info.num_subgraphs} subgraphs (control flow); only the main one is analysed")
    return EdgeTPUAnalysis(info.name, _map(info.operators, tensors), tuple(problems))


def _check(op, tensors):
    """(status, reason) when ``op`` cannot run on the Edge TPU wherever it stands in the graph, else None."""
    if op.name not in SUPPORTED:
        return NOT_SUPPORTED, f"{op.name} is not on the Edge TPU's operator list"
    return _general(op, tensors) or (SUPPORTED[op.name] and SUPPORTED[op.name](op, tensors))


def _map(operators, tensors):
    """A verdict per operator, in execution order (a topological order of the data flow).

    ``on_tpu`` holds the tensors mapped operators write. ``after_tpu`` maps each tensor the CPU computes from
    them, directly or through other CPU operators, to the operator where the data left the Edge TPU: an
    operator reading one runs on the CPU too, since mapping it would open a second Edge TPU subgraph. Tensors
    the CPU computes before the Edge TPU (from the model's inputs alone) are in neither and cut nothing.
    """
    on_tpu, after_tpu, verdicts = set(), {}, []
    for op in operators:
        read = [i for i in op.inputs if i >= 0]
        left = [after_tpu[i] for i in read if i in after_tpu]
        found = _check(op, tensors)
        if found:
            status, reason = found
        elif left:
            origin = operators[min(left)]
            status = AFTER_CPU_OP
            reason = (
                f"reads what {origin.name} (operator {origin.index}) computes on the CPU from the Edge TPU's results"
            )
        else:
            status, reason = MAPPED, ""
        if status == MAPPED:
            on_tpu.update(op.outputs)
        elif left or any(i in on_tpu for i in read):
            after_tpu.update(dict.fromkeys(op.outputs, min(left, default=op.index)))
        verdicts.append(OpVerdict(op.index, op.name, status, reason))
    return tuple(verdicts)
