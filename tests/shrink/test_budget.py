"""Budgets: parsing what users write, measuring the axes, and which limits a model breaks."""

import numpy as np
import pytest

from tfscissor.errors import UsageError
from tfscissor.models import build_model
from tfscissor.shrink.budget import Limit, measure_costs, parse_budget, violations


@pytest.mark.parametrize(
    "text, expected",
    [
        ("macs=0.5", (Limit("macs", 0.5, True),)),
        ("macs=50%", (Limit("macs", 0.5, True),)),
        ("macs=1", (Limit("macs", 1.0, True),)),
        ("macs=30M, params=100k", (Limit("macs", 30e6, False), Limit("params", 100e3, False))),
        ("params=2000", (Limit("params", 2000.0, False),)),
        ("arena=256KiB,bytes=64KB", (Limit("arena", 262144.0, False), Limit("bytes", 64000.0, False))),
        ("latency=2ms", (Limit("latency", 2.0, False),)),
        ("latency=500us", (Limit("latency", 0.5, False),)),
        ("latency=0.8", (Limit("latency", 0.8, True),)),
    ],
)
def test_budgets_parse_fractions_and_absolute_values(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize(
    "text, words",
    [
        ("macs", "is not AXIS=VALUE"),
        ("flops=0.5", "unknown budget axis 'flops'"),
        ("macs=0.5,macs=0.4", "names macs twice"),
        ("arena=2ms", "time units are for latency only"),
        ("arena=3furlongs", "unknown unit 'furlongs'"),
        ("macs=0", "must be positive"),
    ],
)
def test_bad_budgets_say_what_to_write(text, words):
    with pytest.raises(UsageError, match=words):
        parse_budget(text)


def test_limits_bound_relative_to_the_original():
    macs, arena = parse_budget("macs=0.25,arena=1KiB")
    assert macs.bound(1000) == 250 and arena.bound(10**9) == 1024


def test_costs_and_violations_of_a_model():
    model = build_model("plain", (16, 16, 3), 3, widths=(4, 8), seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (20, 16, 16, 3)).astype(np.float32)
    costs = measure_costs(model, ("macs", "params", "bytes", "arena"), images)
    from tfscissor.analysis import profile_model
    from tfscissor.deploy import measure_arena
    from tfscissor.quantize import quantize_int8

    assert costs["macs"] == profile_model(model).macs and costs["params"] == model.count_params()
    tflite = quantize_int8(model, images)
    assert costs["bytes"] == len(tflite) and costs["arena"] == measure_arena(tflite)
    original = dict(costs, macs=2 * costs["macs"])
    limits = parse_budget(f"macs=0.5,params={costs['params'] - 1},arena=1")
    assert violations(costs, limits, original) == {"params": (costs["params"], costs["params"] - 1)}
    with pytest.raises(UsageError, match="need representative images"):
        measure_costs(model, ("bytes",))
