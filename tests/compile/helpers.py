"""Shared test helpers: editing a .tflite through the schema, and the independent LiteRT / TFLM oracles."""

import numpy as np


def repack(model_bytes, mutate):
    """Return ``model_bytes`` with ``mutate(model_t, schema)`` applied to its object tree, re-serialised."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    mutate(model, schema)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def litert_interpreter(model_bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default XNNPACK delegate, so _get_ops_details() lists the model's own ops, not DELEGATE.
    interpreter = Interpreter(
        model_content=model_bytes, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    return interpreter


def litert_ops(model_bytes):
    return [d["op_name"] for d in litert_interpreter(model_bytes)._get_ops_details()]


def litert_run(model_bytes, tensor):
    interpreter = litert_interpreter(model_bytes)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def tflm_run(model_bytes, tensor, arena_size):
    """Run TFLM in this process; raises RuntimeError when the arena is too small."""
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)
    interpreter.set_input(tensor, 0)
    interpreter.invoke()
    return np.array(interpreter.get_output(0))


def random_input(shape, seed):
    return np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.int8)
