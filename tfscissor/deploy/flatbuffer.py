"""Reading a ``.tflite`` flatbuffer without TensorFlow: its ops (with their options), tensors (with constants'
data), quantisation and int8-ness.

The schema bindings come with ``ai_edge_litert``, so this runs wherever the deployment path runs. Python's
flatbuffers reader does no verification, so every parse happens inside one guard that turns any failure on
corrupt or truncated bytes into a :class:`ModelError` naming the file.
"""

from dataclasses import dataclass, field

from tfscissor.deploy.litert import read_tflite
from tfscissor.errors import ModelError

_FILE_IDENTIFIER = b"TFL3"


def _schema():
    # Imported lazily so that `import tfscissor.compile` does not load the schema (5k lines) until needed.
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum_names(enum_class):
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: ``dtype`` is the schema's name in lower case (``int8``, ``int32``, ``float32``)."""

    index: int
    name: str
    shape: tuple
    dtype: str
    constant: bool
    scale: tuple = ()
    zero_point: tuple = ()
    shape_signature: tuple = ()  # the shape with -1 where a dimension is dynamic; () when the file has none
    data: bytes = field(default=b"", repr=False, compare=False)  # a constant's raw little-endian bytes

    @property
    def quantization(self):
        """(scale, zero_point) of a per-tensor quantised tensor; (0.0, 0) when not quantised."""
        if not self.scale:
            return 0.0, 0
        return float(self.scale[0]), int(self.zero_point[0]) if self.zero_point else 0

    @property
    def dynamic(self):
        """True when a dimension is only known at run time."""
        return any(d < 0 for d in self.shape_signature)

    def values(self):
        """A constant's values as a numpy array of its shape (int8, int32, float32, ...)."""
        import numpy as np

        return np.frombuffer(self.data, dtype=np.dtype(self.dtype).newbyteorder("<")).reshape(self.shape)


@dataclass(frozen=True)
class OperatorInfo:
    """One operator of the main subgraph: its name, input and output tensor indices (-1: an absent optional
    input) and its builtin options as a dict of the schema's field names (``fusedActivationFunction``, ...)."""

    index: int
    name: str
    inputs: tuple
    outputs: tuple
    options: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TFLiteInfo:
    """What a deployment needs to know about a ``.tflite`` model.

    ``ops`` lists every operator, main subgraph first, in execution order (TFLite runs a subgraph's operators
    in the order they are stored); ``op_counts`` counts them in order of first appearance.
    """

    name: str
    size: int
    version: int
    num_subgraphs: int
    ops: tuple
    op_counts: dict
    tensors: tuple
    inputs: tuple
    outputs: tuple
    non_int8_tensors: tuple = field(default=())
    float_activations: tuple = field(default=())
    operators: tuple = field(default=(), repr=False)  # the main subgraph's, as OperatorInfo, in execution order

    @property
    def distinct_ops(self):
        """Each op once, sorted: the set an op resolver must register."""
        return tuple(sorted(self.op_counts))

    @property
    def fully_int8(self):
        """True when every activation is int8 and every constant int8 or int32 (biases, shapes, axes).

        A model converted with a dynamic batch computes some shapes at run time in int32 (Keras's Flatten:
        SHAPE, STRIDED_SLICE, PACK): it is not fully int8 but still integer-only, see ``float_activations``.
        """
        return not self.non_int8_tensors

    @property
    def input(self):
        return self.inputs[0]

    def to_dict(self):
        """JSON-able summary: sizes, ops, int8-ness, and the model's input and output tensors."""

        def tensor(t):
            scale, zero_point = t.quantization
            return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": scale, "zero_point": zero_point}

        return {
            "name": self.name,
            "size": self.size,
            "ops": list(self.ops),
            "op_counts": dict(self.op_counts),
            "fully_int8": self.fully_int8,
            "inputs": [tensor(t) for t in self.inputs],
            "outputs": [tensor(t) for t in self.outputs],
        }

    @property
    def output(self):
        return self.outputs[0]


def _op_name(schema, opcode, builtin_names):
    # Codes below 127 live in the deprecated int8 field in older files; the larger of the two is the real one
    # (what TFLM's own reader does).
    code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
    if code == schema.BuiltinOperator.CUSTOM:
        custom = opcode.customCode.decode("utf-8", "replace") if opcode.customCode else "?"
        return f"CUSTOM:{custom}"
    return builtin_names.get(code, f"UNKNOWN_BUILTIN_{code}")


def _is_constant(buffers, tensor, size):
    buffer = buffers[tensor.buffer] if 0 <= tensor.buffer < len(buffers) else None
    if buffer is None:
        return False
    if buffer.offset > 1:
        # Models over 2 GB keep constant data after the flatbuffer, addressed by offset and size.
        if buffer.offset + buffer.size > size:
            raise ValueError(f"buffer {tensor.buffer} runs past the end of the file")
        return True
    return buffer.data is not None and len(buffer.data) > 0


def _constant_bytes(data, buffers, tensor):
    buffer = buffers[tensor.buffer] if 0 <= tensor.buffer < len(buffers) else None
    if buffer is None:
        return b""
    if buffer.offset > 1:
        return bytes(data[buffer.offset : buffer.offset + buffer.size])
    return b"" if buffer.data is None else bytes(buffer.data)


def _tensor_info(index, tensor, buffers, size, type_names, data=b""):
    quant = tensor.quantization
    scale = tuple(float(s) for s in quant.scale) if quant is not None and quant.scale is not None else ()
    zero = tuple(int(z) for z in quant.zeroPoint) if quant is not None and quant.zeroPoint is not None else ()
    return TensorInfo(
        index=index,
        name=tensor.name.decode("utf-8", "replace") if tensor.name else f"tensor_{index}",
        shape=tuple(int(d) for d in tensor.shape) if tensor.shape is not None else (),
        dtype=type_names.get(tensor.type, f"type_{tensor.type}").lower(),
        constant=_is_constant(buffers, tensor, size),
        scale=scale,
        zero_point=zero,
        shape_signature=tuple(int(d) for d in tensor.shapeSignature) if tensor.shapeSignature is not None else (),
        data=_constant_bytes(data, buffers, tensor),
    )


def _options(op):
    options = op.builtinOptions
    return {} if options is None else {k: v for k, v in vars(options).items() if not k.startswith("_")}


def _ints(vector):
    # The object API gives an absent vector as None and a present one as a numpy array.
    return [] if vector is None else [int(v) for v in vector]


def _parse(data, name):
    schema = _schema()
    builtin_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if not model.subgraphs:
        raise ValueError("it has no subgraph")
    opcodes = model.operatorCodes or []
    buffers = model.buffers or []
    ops, subgraph_tensors = [], []
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors or []
        for op in subgraph.operators or []:
            if not 0 <= op.opcodeIndex < len(opcodes):
                raise ValueError(f"an operator refers to opcode {op.opcodeIndex} of {len(opcodes)}")
            for t in [*_ints(op.inputs), *_ints(op.outputs)]:
                if t >= len(tensors):  # -1 marks an optional input that is absent
                    raise ValueError(f"an operator refers to tensor {t} of {len(tensors)}")
            ops.append(_op_name(schema, opcodes[op.opcodeIndex], builtin_names))
        subgraph_tensors.append(
            [_tensor_info(i, t, buffers, len(data), type_names, data) for i, t in enumerate(tensors)]
        )
    main = model.subgraphs[0]
    tensors = subgraph_tensors[0]
    operators = tuple(
        OperatorInfo(i, ops[i], tuple(_ints(op.inputs)), tuple(_ints(op.outputs)), _options(op))
        for i, op in enumerate(main.operators or [])
    )
    inputs, outputs = _ints(main.inputs), _ints(main.outputs)
    for i in inputs + outputs:
        if not 0 <= i < len(tensors):
            raise ValueError(f"the model's inputs or outputs refer to tensor {i} of {len(tensors)}")
    counts = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    non_int8 = tuple(
        t.name for ts in subgraph_tensors for t in ts if not (t.dtype == "int8" or (t.constant and t.dtype == "int32"))
    )
    floats = tuple(
        t.name for ts in subgraph_tensors for t in ts if not t.constant and t.dtype.startswith(("float", "bfloat"))
    )
    return TFLiteInfo(
        name=name,
        size=len(data),
        version=int(model.version),
        num_subgraphs=len(model.subgraphs),
        ops=tuple(ops),
        op_counts=counts,
        tensors=tuple(tensors),
        inputs=tuple(tensors[i] for i in inputs),
        outputs=tuple(tensors[i] for i in outputs),
        non_int8_tensors=non_int8,
        float_activations=floats,
        operators=operators,
    )


def read_model(model, *, name=None):
    """Describe a ``.tflite`` model given as bytes or a path; ``name`` (default: the path) names it in errors."""
    data, name = read_tflite(model, name)
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ModelError(
            f"{name} is not a .tflite flatbuffer (no 'TFL3' identifier): convert the model with `tfscissor quantize`"
        )
    try:
        return _parse(data, name)
    except Exception as err:  # the unverified reader fails with struct.error, TypeError, IndexError, ... alike
        raise ModelError(f"{name} is a corrupt or truncated .tflite file ({err}): convert the model again") from err
