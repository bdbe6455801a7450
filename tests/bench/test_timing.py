import pytest

from tfscissor.bench.timing import latency_stats, time_invocations


def test_statistics_of_known_times():
    ms = [5, 1, 4, 2, 3, 10, 6, 7, 9, 8]
    stats = latency_stats(20_000_000, [int(v * 1e6) for v in ms])
    assert stats == {
        "first_inference_ms": 20.0,
        "median_ms": 5.5,
        "p90_ms": pytest.approx(9.1),
        "max_ms": 10.0,
        "min_ms": 1.0,
        "mean_ms": 5.5,
        "throughput_per_s": pytest.approx(1000 / 5.5),
    }


def test_first_warmup_and_timed_calls_are_counted_apart():
    calls, ticks = [], []
    stats = time_invocations(lambda: calls.append(1), runs=4, warmup=3, tick=ticks.append)
    assert len(calls) == 1 + 3 + 4 and ticks == [1] * 4
    assert stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["max_ms"]
