"""Budgets for compound shrinking: what a shrunk model may cost, on one axis or several.

``macs=0.5,arena=256KiB`` reads as: at most half the original's MACs and at most 256 KiB of TFLM arena. A
bare number up to 1 (or a percentage) is a fraction of the original model's cost; a number with a unit
(``k``, ``M``, ``G``; ``KiB``, ``MiB``, ``KB``, ``MB``; ``ms``, ``us``) or above 1 is absolute.

Axes: ``macs`` and ``params`` (from the layer graph), ``bytes`` (the full-int8 ``.tflite``), ``arena`` (the
smallest TFLM arena that runs it) and ``latency`` (median host LiteRT ``invoke``, in milliseconds). The last
three are measured on the int8 model, so only budgets that name them pay for a conversion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tfscissor.bench import bench_cpu
from tfscissor.deploy import measure_arena
from tfscissor.errors import UsageError
from tfscissor.quantize import quantize_int8

__all__ = ["AXES", "Limit", "parse_budget", "measure_costs", "combine_costs", "violations"]

AXES = ("macs", "params", "bytes", "arena", "latency")
_UNITS = {
    "": 1,
    "k": 1e3,
    "m": 1e6,
    "g": 1e9,
    "kb": 1e3,
    "mb": 1e6,
    "kib": 2**10,
    "mib": 2**20,
    "b": 1,
    "ms": 1,
    "us": 1e-3,
    "s": 1e3,
}
_ENTRY = re.compile(r"^\s*([a-z]+)\s*=\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(%|[a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class Limit:
    """One axis of a budget: ``value`` is a fraction of the original's cost when ``relative``, else absolute
    (MACs, parameters, bytes, or milliseconds for latency)."""

    axis: str
    value: float
    relative: bool

    def bound(self, original):
        """The absolute limit, given the original model's cost on this axis."""
        return self.value * original if self.relative else self.value

    def __str__(self):
        return f"{self.axis}={self.value:g}" if self.relative else f"{self.axis}<={self.value:,.6g}"


def parse_budget(text):
    """``"macs=0.5,arena=256KiB"`` -> a tuple of :class:`Limit`, one per axis."""
    limits = {}
    for entry in str(text).split(","):
        match = _ENTRY.match(entry)
        if not match:
            raise UsageError(
                f"budget entry {entry.strip()!r} is not AXIS=VALUE: write e.g. macs=0.5,arena=256KiB,latency=2ms"
            )
        axis, number, unit = match.group(1), float(match.group(2)), match.group(3)
        if axis not in AXES:
            raise UsageError(f"unknown budget axis {axis!r}: use {', '.join(AXES)}")
        if axis in limits:
            raise UsageError(f"budget names {axis} twice: give each axis once")
        if unit == "%":
            limit = Limit(axis, number / 100, True)
        elif unit.lower() in _UNITS and (unit or number > 1):
            if unit.lower() in ("ms", "us", "s") and axis != "latency":
                raise UsageError(f"budget {axis}={number}{unit}: time units are for latency only")
            limit = Limit(axis, number * _UNITS[unit.lower()], False)
        elif not unit:
            limit = Limit(axis, number, True)
        else:
            raise UsageError(
                f"budget {axis}={number}{unit}: unknown unit {unit!r} (use k, M, G, KiB, MiB, ms, us or %)"
            )
        if limit.value <= 0:
            raise UsageError(f"budget {axis} must be positive, got {entry.strip()!r}")
        limits[axis] = limit
    return tuple(limits.values())


def measure_costs(model, axes, representative_images=None, latency_runs=50):
    """The costs of a Keras ``model`` on ``axes``: MACs and parameters from its graph; ``bytes``, ``arena``
    and ``latency`` from its full-int8 conversion (calibrated on ``representative_images``, which those axes
    need)."""
    from tfscissor.analysis import profile_model

    costs = {}
    if {"macs", "params"} & set(axes):
        profile = profile_model(model)
        costs.update(macs=profile.macs, params=profile.params)
    if {"bytes", "arena", "latency"} & set(axes):
        if representative_images is None:
            raise UsageError("budgets on bytes, arena or latency need representative images for the int8 model")

        tflite = quantize_int8(model, representative_images)
        costs["bytes"] = len(tflite)
        if "arena" in axes:
            costs["arena"] = measure_arena(tflite)
        if "latency" in axes:
            costs["latency"] = bench_cpu(tflite, runs=latency_runs, warmup=5)["median_ms"]
    return {axis: costs[axis] for axis in axes}


def combine_costs(costs, beside):
    """The costs of two stages run one after the other (a cropper, then the classifier): MACs, parameters,
    bytes and latency add up; the arena is the larger one, because the stages can share one arena in turn."""
    return {
        axis: max(value, beside[axis]) if axis == "arena" else value + beside[axis] for axis, value in costs.items()
    }


def violations(costs, limits, original):
    """The limits ``costs`` break, as ``{axis: (cost, bound)}``; ``original`` holds the original's costs."""
    broken = {}
    for limit in limits:
        bound = limit.bound(original[limit.axis])
        if costs[limit.axis] > bound:
            broken[limit.axis] = (costs[limit.axis], bound)
    return broken
