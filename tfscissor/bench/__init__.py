"""Benchmarks: latency and memory of deployed models, measured on a device.

``cpu`` is LiteRT on this host, ``tflm`` TFLite Micro's interpreter on this host (arena, flash, ops and host
time), ``usb`` and ``pci`` the Coral Edge TPU. Nothing here imports TensorFlow, so a benchmark runs where only
the inference runtimes are installed.
"""

from tfscissor.bench.coral import EdgeTpuUnavailable, bench_coral, find_runtime
from tfscissor.bench.cpu import bench_cpu
from tfscissor.bench.devices import DEVICES, bench, parse_device
from tfscissor.bench.tflm import bench_tflm

__all__ = [
    "DEVICES",
    "EdgeTpuUnavailable",
    "bench",
    "bench_coral",
    "bench_cpu",
    "bench_tflm",
    "find_runtime",
    "parse_device",
]
