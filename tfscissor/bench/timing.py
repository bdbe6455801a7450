"""How every device is timed: one first inference on its own, untimed warm-up, then timed runs.

Only the invocation is timed: setting the input and reading the output are the application's cost, not the
model's, and on a microcontroller-sized model they would otherwise dominate. Every device reports the same
statistics, so a cpu, tflm and Edge TPU result read alike.
"""

import time

import numpy as np

from tfscissor.errors import UsageError


def check_count(value, what, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{what} must be an integer of at least {minimum}, got {value!r}")


def progress_hook(progress):
    """``progress`` as a function of a count: a tqdm bar (or anything with ``update(n)``), a callable, or None."""
    if progress is None:
        return None
    if hasattr(progress, "update"):
        return progress.update
    if callable(progress):
        return progress
    raise UsageError(
        f"progress must be a callable taking a count or an object with update(n), got {type(progress).__name__}"
    )


def check_schedule(runs, warmup, progress):
    """Validate the common options; returns the progress hook."""
    check_count(runs, "runs", 1)
    check_count(warmup, "warmup", 0)
    return progress_hook(progress)


def latency_stats(first_ns, times_ns):
    """Milliseconds of one first inference and of the timed runs, and throughput as 1000 / median."""
    ms = np.asarray(times_ns, dtype=np.int64) / 1e6
    median = float(np.median(ms))
    return {
        "first_inference_ms": first_ns / 1e6,
        "median_ms": median,
        "p90_ms": float(np.percentile(ms, 90)),
        "max_ms": float(ms.max()),
        "min_ms": float(ms.min()),
        "mean_ms": float(ms.mean()),
        "throughput_per_s": 1000.0 / median if median > 0 else float("inf"),
    }


def time_invocations(invoke, runs, warmup, tick=None):
    """Time ``invoke()``: the first call alone (cold caches, lazy set-up, an accelerator's model upload), then
    ``warmup`` untimed calls, then ``runs`` timed ones, calling ``tick(1)`` after each. Returns :func:`latency_stats`.
    """
    start = time.perf_counter_ns()
    invoke()
    first_ns = time.perf_counter_ns() - start
    for _ in range(warmup):
        invoke()
    times = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        start = time.perf_counter_ns()
        invoke()
        times[i] = time.perf_counter_ns() - start
        if tick is not None:
            tick(1)
    return latency_stats(first_ns, times)
