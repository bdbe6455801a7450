"""Host CPU latency of a ``.tflite`` model through LiteRT, the same interpreter ``eval`` uses.

Only the ``invoke()`` call is timed: setting the input and reading the output are the application's cost, not
the model's, and on a microcontroller-sized model they would otherwise dominate.
"""

import sys
import time

import numpy as np

from tfscissor.errors import UsageError
from tfscissor.litert import TFLiteModel, seeded_input

_INPUT_SEED = 0


def _check_count(value, what, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{what} must be an integer of at least {minimum}, got {value!r}")


def _peak_rss_bytes():
    # ru_maxrss is in KiB on Linux and in bytes on macOS: the process's peak, not this model's alone.
    try:
        import resource
    except ImportError:  # Windows has no getrusage
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _progress_hook(progress):
    if progress is None:
        return None
    if hasattr(progress, "update"):  # a tqdm bar, or anything shaped like one
        return progress.update
    if callable(progress):
        return progress
    raise UsageError(
        f"progress must be a callable taking a count or an object with update(n), got {type(progress).__name__}"
    )


def bench_cpu(model, runs=100, warmup=10, num_threads=None, progress=None):
    """Time ``runs`` invocations of ``model`` (``.tflite`` bytes or a path) on the host CPU.

    The first invocation after tensor allocation is timed on its own (``first_inference_ms``: caches cold,
    lazy kernel set-up); then ``warmup`` untimed runs, then ``runs`` timed ones. ``progress`` is called with 1
    after each timed run (a tqdm bar or its ``update`` both work). Returns a JSON-ready dict of milliseconds,
    throughput (1 / median), peak resident memory of the process, and what was run.
    """
    _check_count(runs, "runs", 1)
    _check_count(warmup, "warmup", 0)
    if num_threads is not None:
        _check_count(num_threads, "num_threads", 1)
    tick = _progress_hook(progress)
    tflite = TFLiteModel.load(model, num_threads=num_threads)
    interpreter = tflite.interpreter
    # Values do not change int8 latency; a seeded tensor keeps runs comparable anyway.
    tensor = seeded_input(tuple(int(d) for d in tflite.input["shape"]), tflite.input["dtype"], seed=_INPUT_SEED)
    interpreter.set_tensor(tflite.input["index"], tensor)

    start = time.perf_counter_ns()
    interpreter.invoke()
    first_ns = time.perf_counter_ns() - start
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times[i] = time.perf_counter_ns() - start
        if tick is not None:
            tick(1)

    ms = times / 1e6
    median = float(np.median(ms))
    return {
        "backend": "litert-cpu",
        "model_bytes": len(tflite.model_bytes),
        "input_shape": [int(d) for d in tensor.shape],
        "input_dtype": tensor.dtype.name,
        "num_threads": num_threads,
        "runs": runs,
        "warmup": warmup,
        "first_inference_ms": first_ns / 1e6,
        "median_ms": median,
        "p90_ms": float(np.percentile(ms, 90)),
        "max_ms": float(ms.max()),
        "min_ms": float(ms.min()),
        "mean_ms": float(ms.mean()),
        "throughput_per_s": 1000.0 / median if median > 0 else float("inf"),
        "peak_rss_bytes": _peak_rss_bytes(),
    }


def bench_cpu_pipeline(cropper, classifier, runs=100, warmup=10, num_threads=None, policy=None, progress=None):
    """Crop-then-classify on the host CPU: the cropper, the crop policy and the classifier, each timed alone.

    The models are timed as :func:`bench_cpu` times one model; the crop (numpy, the host's pre-processing) is
    timed on a seeded image cut at a box half the image's side. They run one after the other on one image,
    so ``total_median_ms`` is the sum of the three medians. ``progress`` advances once per timed run of each
    model.
    """
    from tfscissor.crop.boxes import check_box_outputs
    from tfscissor.crop.policy import CropPolicy

    check_box_outputs(TFLiteModel.load(cropper).output["shape"][-1], cropper)
    stages = {
        "cropper": bench_cpu(cropper, runs=runs, warmup=warmup, num_threads=num_threads, progress=progress),
        "classifier": bench_cpu(classifier, runs=runs, warmup=warmup, num_threads=num_threads, progress=progress),
    }
    image_shape = stages["cropper"]["input_shape"][1:]
    resolution = stages["classifier"]["input_shape"][1]
    image = seeded_input((1, *image_shape), np.uint8, seed=_INPUT_SEED)
    box = np.array([[0.25, 0.25, 0.75, 0.75]], dtype=np.float32)
    policy = policy or CropPolicy()
    crop_ms = np.empty(runs)
    for i in range(warmup + runs):
        start = time.perf_counter_ns()
        policy.crop(image, box, resolution)
        if i >= warmup:
            crop_ms[i - warmup] = (time.perf_counter_ns() - start) / 1e6
    crop_median = float(np.median(crop_ms))
    return {
        "backend": "litert-cpu",
        "stages": stages,
        "crop_median_ms": crop_median,
        "total_median_ms": stages["cropper"]["median_ms"] + crop_median + stages["classifier"]["median_ms"],
        "model_bytes": stages["cropper"]["model_bytes"] + stages["classifier"]["model_bytes"],
        "runs": runs,
        "warmup": warmup,
        "num_threads": num_threads,
    }
