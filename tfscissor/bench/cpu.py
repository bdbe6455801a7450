"""Host CPU latency of a ``.tflite`` model through LiteRT, the same interpreter ``eval`` uses."""

import sys

from tfscissor.bench.timing import check_count, check_schedule, time_invocations
from tfscissor.deploy.litert import TFLiteModel, seeded_input

INPUT_SEED = 0  # values do not change int8 latency; a seeded tensor keeps runs comparable anyway


def _peak_rss_bytes():
    # ru_maxrss is in KiB on Linux and in bytes on macOS: the process's peak, not this model's alone.
    try:
        import resource
    except ImportError:  # Windows has no getrusage
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def bench_cpu(model, runs=100, warmup=10, num_threads=None, progress=None):
    """Time ``runs`` invocations of ``model`` (``.tflite`` bytes or a path) on the host CPU.

    The first invocation after tensor allocation is timed on its own (``first_inference_ms``: caches cold,
    lazy kernel set-up); then ``warmup`` untimed runs, then ``runs`` timed ones. ``progress`` is called with 1
    after each timed run (a tqdm bar or its ``update`` both work). Returns a JSON-ready dict of milliseconds,
    throughput (1 / median), peak resident memory of the process, and what was run.
    """
    tick = check_schedule(runs, warmup, progress)
    if num_threads is not None:
        check_count(num_threads, "num_threads", 1)
    tflite = TFLiteModel.load(model, num_threads=num_threads)
    interpreter = tflite.interpreter
    tensor = seeded_input(tuple(int(d) for d in tflite.input["shape"]), tflite.input["dtype"], seed=INPUT_SEED)
    interpreter.set_tensor(tflite.input["index"], tensor)
    stats = time_invocations(interpreter.invoke, runs, warmup, tick)
    return {
        "backend": "litert-cpu",
        "model_bytes": len(tflite.model_bytes),
        "input_shape": [int(d) for d in tensor.shape],
        "input_dtype": tensor.dtype.name,
        "num_threads": num_threads,
        "runs": runs,
        "warmup": warmup,
        **stats,
        "peak_rss_bytes": _peak_rss_bytes(),
    }
