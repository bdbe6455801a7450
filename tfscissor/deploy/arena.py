"""The smallest tensor arena a ``.tflite`` model needs in TensorFlow Lite Micro, found by running the exact model
bytes in TFLM's own interpreter (``tflite-micro``) at decreasing arena sizes.

The probes run in a child process (:mod:`tfscissor.deploy._probe`), because TFLM's Python runtime segfaults on
arenas below ~500 bytes instead of raising. Compile, bench and the shrink budget all measure arenas here.
"""

import math

import numpy as np

from tfscissor.deploy._probe import Prober
from tfscissor.deploy.flatbuffer import read_model
from tfscissor.deploy.litert import quantize_image, read_tflite, seeded_input
from tfscissor.errors import ModelError, UsageError

ARENA_GRANULARITY = 16  # TFLM aligns every allocation to 16 bytes, so finer steps measure nothing
DEFAULT_MAX_ARENA = 64 << 20  # past this, a model is no longer a microcontroller model
DEFAULT_ARENA_MARGIN = 0.1
_FIRST_GUESS = 4096  # small models then need ~10 probes rather than log2(64 MiB / 16) = 22
SAMPLE_SEED = 0


def round_up(value, step=ARENA_GRANULARITY):
    return -(-int(value) // step) * step


def configured_arena(measured, margin=DEFAULT_ARENA_MARGIN):
    """The ``kTensorArenaSize`` a project configures for a ``measured`` arena: ``margin`` more, in 16-byte steps."""
    return round_up(math.ceil(measured * (1 + margin)))


def two_stage_buffers(image_shape):
    """RAM the two-stage runner keeps besides the arenas, in bytes: (the whole uint8 image, one row of 32-bit
    sums for the resize), for a cropper taking ``image_shape`` (H, W, C) images."""
    rows, cols, channels = (int(d) for d in image_shape)
    return rows * cols * channels, 4 * cols * channels


def sample_input(info, image=None):
    """The int8 input tensor (HWC bytes) for the sample: ``image`` quantised, or seeded random values."""
    try:
        dtype = np.dtype(info.input.dtype)
    except TypeError:
        raise ModelError(f"{info.name} takes {info.input.dtype} input, which cannot be fed as an image") from None
    shape = info.input.shape
    if image is None:
        return seeded_input(shape, dtype, seed=SAMPLE_SEED)
    image = np.asarray(image, dtype=np.float32)
    if image.shape != tuple(shape[1:]):
        raise UsageError(
            f"sample_image has shape {image.shape}, the model takes {tuple(shape[1:])}: pass one image (H, W, C)"
        )
    return quantize_image(image, *info.input.quantization)[None]


def _search_arena(prober, name, max_arena):
    """Smallest multiple of 16 with which the model runs, assuming that any larger arena works too.

    Invariant of the bisection: ``lo`` failed (0 by definition) and ``hi`` succeeded. Returns (size, output).
    """
    output = prober.probe(max_arena)
    if output is None:
        detail = prober.last_log.splitlines()[-1] if prober.last_log else "TFLM printed nothing"
        if prober.last_exit:
            raise ModelError(
                f"TFLite Micro {prober.last_exit} preparing {name} ({detail}): this happens with degenerate "
                "quantisation, for example an untrained model whose activations collapse to scales near 1e-9; "
                "train it before quantising"
            )
        raise ModelError(f"TFLite Micro cannot run {name} even with a {max_arena}-byte arena: {detail}")
    lo, hi = 0, max_arena
    size = _FIRST_GUESS
    while size < hi:
        result = prober.probe(size)
        if result is not None:
            hi, output = size, result
            break
        lo, size = size, size * 2
    while hi - lo > ARENA_GRANULARITY:
        mid = max(lo + ARENA_GRANULARITY, (lo + hi) // 2 // ARENA_GRANULARITY * ARENA_GRANULARITY)
        result = prober.probe(mid)
        if result is None:
            lo = mid
        else:
            hi, output = mid, result
    return hi, output


def measure(data, info, input_tensor, max_arena):
    if not isinstance(max_arena, int) or max_arena < ARENA_GRANULARITY:
        raise UsageError(f"max_arena must be an integer of at least {ARENA_GRANULARITY} bytes, got {max_arena!r}")
    with Prober(data, np.ascontiguousarray(input_tensor).tobytes()) as prober:
        return _search_arena(prober, info.name, round_up(max_arena))


def measure_arena(model_bytes, *, max_arena=DEFAULT_MAX_ARENA):
    """Smallest ``arena_size`` (a multiple of 16) with which TFLM's interpreter allocates and invokes the model.

    ``model_bytes``: the ``.tflite`` bytes (or a path). Probes run in a child process, because TFLM's Python
    runtime segfaults on arenas below ~500 bytes instead of raising, and its messages about failed allocations
    go to that process's stderr rather than the user's terminal. Raises ModelError if the model cannot run
    in ``max_arena`` bytes.
    """
    data, name = read_tflite(model_bytes)
    info = read_model(data, name=name)
    if not info.inputs or not info.outputs:
        raise ModelError(f"{name} has no input or no output tensor: it is not a runnable model")
    return measure(data, info, sample_input(info), max_arena)[0]
