"""TensorFlow Lite Micro on this host: the arena and flash a model needs, its ops, and the time TFLM's kernels
take here.

The arena is the smallest with which TFLM allocates and invokes the model (:func:`~tfscissor.compile.measure_arena`,
searched in a child process because TFLM crashes on tiny arenas). The timed runs then happen in this process
with the arena a firmware project configures (10% more), which is known to work. Their time is host time:
TFLM's reference kernels on this machine's CPU. It compares versions of a model with each other; it is not how
long a microcontroller takes (its clock, its memory and its optimised kernels, CMSIS-NN or ESP-NN, decide that).
"""

import numpy as np

from tfscissor.bench.cpu import INPUT_SEED
from tfscissor.bench.timing import check_schedule, time_invocations
from tfscissor.compile.boards import RUNTIME_FLASH, RUNTIME_RAM, check_fit
from tfscissor.deploy.arena import configured_arena, measure_arena, two_stage_buffers
from tfscissor.deploy.flatbuffer import read_model
from tfscissor.deploy.litert import check_tflite_path, read_tflite, seeded_input

HOST_TIME = "host time, not a device figure: TFLM's reference kernels on this machine's CPU"


def bench_tflm(model, runs=100, warmup=10, progress=None):
    """Arena, flash bytes, ops and host time per invocation of ``model`` (``.tflite`` bytes or a path) in TFLM.

    ``arena_bytes`` is the measured minimum, ``configured_arena_bytes`` what a firmware project configures and
    what the timed runs use; ``model_bytes`` is what the model costs in flash; ``ops`` lists every operator in
    execution order and ``op_counts`` counts them. Times are ``timing``: host time, not a device figure.
    ``progress`` is called with 1 after each timed run. Raises ModelError when TFLM cannot run the model.
    """
    from tflite_micro import runtime

    tick = check_schedule(runs, warmup, progress)
    check_tflite_path(model)
    data, name = read_tflite(model)
    info = read_model(data, name=name)
    measured = measure_arena(data)
    arena = configured_arena(measured)
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=arena)
    details = interpreter.get_input_details(0)
    tensor = seeded_input(tuple(int(d) for d in details["shape"]), details["dtype"], seed=INPUT_SEED)
    interpreter.set_input(tensor, 0)
    stats = time_invocations(interpreter.invoke, runs, warmup, tick)
    return {
        "backend": "tflm-host",
        "timing": HOST_TIME,
        "model_bytes": len(data),
        "arena_bytes": measured,
        "configured_arena_bytes": arena,
        "ops": list(info.ops),
        "op_counts": dict(info.op_counts),
        "input_shape": [int(d) for d in tensor.shape],
        "input_dtype": np.dtype(tensor.dtype).name,
        "runs": runs,
        "warmup": warmup,
        **stats,
    }


def board_fit(board, stages, image_shape=None):
    """Whether the benchmarked models fit ``board`` as ``tfscissor compile --target tflm --board`` would decide:
    every model in flash, every configured arena in RAM, plus the two-stage runner's buffers when the cropper's
    ``image_shape`` is given. A JSON-ready dict with the warnings, or ModelError stating the numbers."""
    flash = sum(stage["model_bytes"] for stage in stages)
    ram = sum(stage["configured_arena_bytes"] for stage in stages)
    buffers = sum(two_stage_buffers(image_shape)) if image_shape is not None else 0
    fit = check_fit(board, flash, ram + buffers)
    return {
        "board": fit.board.name,
        "title": fit.board.title,
        "flash_bytes": fit.flash,
        "flash_capacity_bytes": fit.board.flash,
        "ram_bytes": fit.ram,
        "ram_capacity_bytes": fit.board.ram,
        "runner_buffer_bytes": buffers,
        # The runtime's share is an allowance, not a measured build: say so wherever the figure goes.
        "estimated_runtime_bytes": {"flash": RUNTIME_FLASH, "ram": RUNTIME_RAM},
        "summary": fit.summary(),
        "warnings": list(fit.warnings),
    }
