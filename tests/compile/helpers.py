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


def square_image(shape):
    """A dark image with a bright square: a sample whose cropper box is whatever the cropper makes of it."""
    image = np.full(shape, 30, np.uint8)
    image[4:14, 10:20] = 220
    return image


def build_cmake_port(project, build, tflm_dir, startup, linker_script, cxx_flags=None, options=(), jobs=4):
    """Configure and build a project's cmake/ port for arm-none-eabi against the TFLM tree ``tflm_dir``, linked
    with a board's ``startup`` code and ``linker_script``; asserts both steps succeed."""
    import subprocess

    configure = [
        "cmake",
        "-S",
        str(project.path / "cmake"),
        "-B",
        str(build),
        f"-DCMAKE_TOOLCHAIN_FILE={project.path / 'cmake' / 'arm-none-eabi.cmake'}",
        f"-DTFLM_DIR={tflm_dir}",
        *([f"-DCMAKE_CXX_FLAGS={cxx_flags}"] if cxx_flags else []),
        f"-DSTARTUP_SOURCES={startup}",
        f"-DLINKER_SCRIPT={linker_script}",
        "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
        *options,
    ]
    result = subprocess.run(configure, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(["cmake", "--build", str(build), f"-j{jobs}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
