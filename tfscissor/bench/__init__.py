"""Benchmarks: latency and memory of deployed models, measured on the target (host LiteRT CPU here).

Nothing here imports TensorFlow, so a benchmark runs where only the inference runtimes are installed.
"""

from tfscissor.bench.cpu import bench_cpu, bench_cpu_pipeline

__all__ = ["bench_cpu", "bench_cpu_pipeline"]
