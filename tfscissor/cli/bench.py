"""``bench``: latency of a ``.tflite`` model (or a two-stage pipeline) on the host CPU, in TFLite Micro, or on
a Coral Edge TPU (:func:`tfscissor.bench.bench`)."""

import click

from tfscissor.bench import bench as run_bench
from tfscissor.bench.devices import DEVICES
from tfscissor.cli.options import board_option, json_option
from tfscissor.cli.output import emit, format_table
from tfscissor.progress import progress_bar

_BENCH_COLUMNS = {
    "first ms": "first_inference_ms",
    "median ms": "median_ms",
    "p90 ms": "p90_ms",
    "max ms": "max_ms",
    "mean ms": "mean_ms",
    "per s": "throughput_per_s",
    "model bytes": "model_bytes",
    "arena bytes (measured)": "arena_bytes",
    "setup ms": "setup_ms",
}


def _bench_lines(model_path, result):
    """A table of the stages and their total, then what the device adds: ops, the board fit, devices found."""
    stages = result["stages"]
    columns = [c for c, key in _BENCH_COLUMNS.items() if any(key in stage for stage in stages.values())]
    rows = [
        {"stage": name, **{c: figures.get(_BENCH_COLUMNS[c]) for c in columns}}
        for name, figures in [*stages.items(), ("total", result["total"])]
    ]
    for row in rows:  # whole runs per second read better than 4 significant digits in e-notation
        row["per s"] = round(row["per s"])
    lines = [
        f"{model_path} on {result['device']}, {result['title']}; {result['timing']}",
        f"{result['runs']} timed runs after {result['warmup']} warm-up; first: the first inference, timed alone"
        + ("; total: the sum of the stages" if len(stages) > 1 else ""),
        *format_table(rows, ["stage", *columns]),
    ]
    classifier = stages["classifier"]
    if "num_threads" in classifier:
        threads = classifier["num_threads"] or "LiteRT's default"
        lines.append(f"threads: {threads}; peak RSS of the process {classifier['peak_rss_bytes'] / 2**20:.0f} MiB")
    for name, stage in stages.items():
        if "op_counts" in stage:
            lines.append(f"{name} ops: " + ", ".join(f"{op} x{n}" for op, n in stage["op_counts"].items()))
        if "cpu_ops" in stage:
            lines.append(
                f"{name}: {stage['edgetpu_ops']} Edge TPU op(s); on the host CPU: {', '.join(stage['cpu_ops']) or 'none'}"
            )
    if "devices_found" in classifier:
        found = ", ".join(f"{d['type']}:{i} {d['path']}" for i, d in enumerate(classifier["devices_found"]))
        lines.append(f"Edge TPUs found: {found}; setup: opening the device and creating the interpreter")
    if "board" in result:
        fit = result["board"]
        lines.append(f"board {fit['summary']}")
        lines.extend(f"warning: {warning}" for warning in fit["warnings"])
    return lines


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    metavar="|".join(name + ("[:N]" if device.indexed else "") for name, device in DEVICES.items()),
    help="cpu: LiteRT on this host; tflm: TFLite Micro on this host (arena, flash, ops, host time); "
    "usb, pci: the Nth Coral Edge TPU (an _edgetpu.tflite model).",
)
@click.option("--runs", type=click.IntRange(1), default=100, show_default=True)
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None, help="cpu: LiteRT threads (default: LiteRT's).")
@board_option("tflm: check the models and arenas against this board's flash and RAM.")
@click.option(
    "--cropper",
    "cropper_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The cropper's .tflite: time crop-then-classify stage by stage.",
)
@json_option
@click.pass_obj
def bench(settings, model_path, device, runs, warmup, threads, board, cropper_path, as_json):
    """Measure latency of a .tflite model: first inference, then median, p90 and max of N runs.

    \b
    Examples:
      tfscissor bench trimmed.tflite --device cpu --runs 200 --json
      tfscissor bench trimmed.tflite --device tflm --board nano33ble
      tfscissor bench model32.tflite --cropper model32.cropper.tflite
      tfscissor bench trimmed_tpu/classifier_edgetpu.tflite --device usb:0
    """
    models = 1 if cropper_path is None else 2
    with progress_bar(total=models * runs, desc="bench", enabled=settings.progress and not as_json) as bar:
        result = run_bench(
            model_path,
            device=device,
            cropper=cropper_path,
            runs=runs,
            warmup=warmup,
            board=board,
            progress=bar.update,
            num_threads=threads,
        )
    emit(as_json, result, _bench_lines(model_path, result))
