"""Benchmark of `tfscissor bench` devices on demo-sized models: LiteRT on the CPU (1 and 2 threads, int8 and
float32) and TFLite Micro's interpreter on this host, for the classifier alone and for crop-then-classify.

The models have the demo recipe's shapes (``recipes/demo.yaml``: a plain Conv-BN-ReLU classifier, widths 16, 32,
64, two convolutions per stage, 10 classes, 48x48 images) with seeded untrained weights, calibrated on random
images: latency depends on the shapes and the dtype, not on what the weights learned. The two-stage pipeline is
a cropper (width 0.5) on the whole 48x48 image, the crop policy, and the same classifier at 32x32.

Every configuration is measured in each of ``--rounds`` rounds, one after the other, so slow spells of a shared
machine fall on all of them; a row's figure is the median over rounds of each round's median, with the range of
those round medians. Ratios are between rows of this one run. Writes ``bench/runs/device_latency.json`` and this
benchmark's section of ``bench/RESULTS.md``.

    make bench-devices      (or: .venv/bin/python bench/device_latency.py; about a minute on 2 cores)
"""

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfscissor.io import write_text  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from results import log, machine, update_section  # noqa: E402

RUNS = ROOT / "bench" / "runs"
IMAGE = (48, 48, 3)
CROP = 32
CLASSIFIER = {"widths": (16, 32, 64), "convs_per_stage": 2}  # recipes/demo.yaml's model
CLASSES = 10
CROPPER_WIDTH = 0.5
# (row name, model, device, threads): the models are "int8", "float32" (the 48-px classifier) and "two-stage".
CONFIGS = [
    ("int8, cpu 1 thread", "int8", "cpu", 1),
    ("int8, cpu 2 threads", "int8", "cpu", 2),
    ("float32, cpu 1 thread", "float32", "cpu", 1),
    ("float32, cpu 2 threads", "float32", "cpu", 2),
    ("int8, tflm (host time)", "int8", "tflm", None),
    ("two-stage int8, cpu 1 thread", "two-stage", "cpu", 1),
    ("two-stage int8, cpu 2 threads", "two-stage", "cpu", 2),
    ("two-stage int8, tflm (host time)", "two-stage", "tflm", None),
]


def build_models():
    """{name: .tflite bytes} and {name: MACs counted on the Keras graph}."""
    import numpy as np

    from tfscissor.analysis import profile_model
    from tfscissor.models import build_model
    from tfscissor.models.cropper import build_cropper
    from tfscissor.quantize import quantize_int8, to_tflite

    rng = np.random.default_rng(0)
    classifier = build_model("plain", IMAGE, CLASSES, **CLASSIFIER)
    small = build_model("plain", (CROP, CROP, IMAGE[2]), CLASSES, **CLASSIFIER)
    cropper = build_cropper(IMAGE, width=CROPPER_WIDTH, seed=0)
    images = rng.uniform(0, 255, (64, *IMAGE)).astype(np.float32)
    crops = rng.uniform(0, 255, (64, CROP, CROP, IMAGE[2])).astype(np.float32)
    models = {
        "int8": quantize_int8(classifier, images, num_samples=64),
        "float32": to_tflite(classifier),
        "cropper": quantize_int8(cropper, images, num_samples=64),
        "classifier32": quantize_int8(small, crops, num_samples=64),
    }
    macs = {"classifier": profile_model(classifier).macs, "cropper": profile_model(cropper).macs}
    macs["classifier32"] = profile_model(small).macs
    return models, macs


def measure(models, rounds, cpu_runs, tflm_runs):
    """{row: [result of each round]} from :func:`tfscissor.bench.bench`."""
    from tfscissor.bench import bench

    results = {name: [] for name, *_ in CONFIGS}
    for round_index in range(rounds):
        for name, model, device, threads in CONFIGS:
            runs = cpu_runs if device == "cpu" else tflm_runs
            classifier = models["classifier32"] if model == "two-stage" else models[model]
            cropper = models["cropper"] if model == "two-stage" else None
            results[name].append(
                bench(classifier, device=device, cropper=cropper, runs=runs, warmup=runs // 10, num_threads=threads)
            )
        log(f"round {round_index + 1}/{rounds} done")
    return results


def summarise(results):
    """Per row: the median and range of the rounds' total medians, and the last round's stage figures."""
    rows = {}
    for name, rounds in results.items():
        medians = [r["total"]["median_ms"] for r in rounds]
        last = rounds[-1]
        rows[name] = {
            "median_ms": statistics.median(medians),
            "low_ms": min(medians),
            "high_ms": max(medians),
            "first_inference_ms": statistics.median(r["total"]["first_inference_ms"] for r in rounds),
            "stages": {
                stage: statistics.median(r["stages"][stage]["median_ms"] for r in rounds) for stage in last["stages"]
            },
            "model_bytes": last["total"]["model_bytes"],
            "arena_bytes": last["total"].get("arena_bytes"),
            "runs": last["runs"],
        }
    return rows


def ratios(rows):
    def ratio(a, b):
        return rows[a]["median_ms"] / rows[b]["median_ms"]

    return [
        ("int8 / float32, cpu 1 thread", ratio("int8, cpu 1 thread", "float32, cpu 1 thread")),
        ("int8 / float32, cpu 2 threads", ratio("int8, cpu 2 threads", "float32, cpu 2 threads")),
        ("2 threads / 1 thread, int8", ratio("int8, cpu 2 threads", "int8, cpu 1 thread")),
        ("2 threads / 1 thread, float32", ratio("float32, cpu 2 threads", "float32, cpu 1 thread")),
        ("two-stage / classifier alone, cpu 1 thread", ratio("two-stage int8, cpu 1 thread", "int8, cpu 1 thread")),
        ("two-stage / classifier alone, cpu 2 threads", ratio("two-stage int8, cpu 2 threads", "int8, cpu 2 threads")),
        (
            "two-stage / classifier alone, tflm host time",
            ratio("two-stage int8, tflm (host time)", "int8, tflm (host time)"),
        ),
        ("tflm host time / LiteRT cpu 1 thread, int8", ratio("int8, tflm (host time)", "int8, cpu 1 thread")),
    ]


def markdown(result):
    rows, macs = result["rows"], result["macs"]
    two_stage_macs = macs["cropper"] + macs["classifier32"]
    lines = [
        "## Devices (issue 7): LiteRT on the CPU and TFLite Micro on the host, demo-sized models",
        "",
        f"- Command: `{result['command']}` (`make bench-devices`; whole run {result['minutes']:.1f} min)",
        f"- Machine: {result['machine']}, ai-edge-litert {result['versions']['ai-edge-litert']}, tflite-micro "
        f"{result['versions']['tflite-micro']}; load average {result['load_start']:.2f} at the start, "
        f"{result['load_end']:.2f} at the end (other work on the machine slows the timings)",
        f"- Date: {result['date']}",
        f"- Models: the demo recipe's classifier (plain, widths 16-32-64, 2 convs per stage, 10 classes) at 48x48, "
        f"{macs['classifier']:,} MACs; two-stage: a cropper (width {CROPPER_WIDTH}) on the 48x48 image, "
        f"{macs['cropper']:,} MACs, the crop policy on the host, the classifier at {CROP}x{CROP}, "
        f"{macs['classifier32']:,} MACs ({two_stage_macs:,} in all, {two_stage_macs / macs['classifier']:.0%} of the "
        "classifier alone). MACs are counted on the Keras graph (a model figure, not a measurement). Seeded "
        "untrained weights, calibrated on random images: latency depends on shapes and dtype, not on training.",
        f"- Each row: {result['settings']['rounds']} rounds, each of {result['settings']['cpu_runs']} timed runs "
        f"(cpu) or {result['settings']['tflm_runs']} (tflm) after a tenth as many warm-up runs; every row runs once "
        "per round, one after another. Median: the median over rounds of each round's median (a two-stage row sums "
        "its stages' medians); range: the lowest and highest round median; first: the first inference, timed alone "
        "(median over rounds).",
        "- tflm rows are host time, not a device figure: TFLM's reference kernels on this machine's CPU. A "
        "microcontroller's time depends on its clock, memory and optimised kernels (CMSIS-NN, ESP-NN); the arena "
        "and model bytes are what it needs. Their two-stage rows have no crop stage: the firmware crops in C, "
        "which is not timed here. The cpu two-stage rows include the host's crop policy (the C extension where it "
        "was built, else numpy: `stages.crop.backend` says which). No Coral Edge TPU "
        "was attached: `--device usb|pci` was tested only up to the device (stand-ins for libedgetpu and its "
        "delegate).",
        "",
        "| configuration | median ms | range ms | first ms | stages: median ms | model bytes | arena bytes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        stages = ", ".join(f"{stage} {ms:.3f}" for stage, ms in row["stages"].items()) if len(row["stages"]) > 1 else ""
        arena = f"{row['arena_bytes']:,}" if row["arena_bytes"] else ""
        lines.append(
            f"| {name} | {row['median_ms']:.3f} | {row['low_ms']:.3f}-{row['high_ms']:.3f} | "
            f"{row['first_inference_ms']:.3f} | {stages} | {row['model_bytes']:,} | {arena} |"
        )
    lines += ["", "| ratio of medians | value |", "|---|---|"]
    lines += [f"| {name} | {value:.2f}x |" for name, value in result["ratios"]]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpu-runs", type=int, default=500)
    parser.add_argument("--tflm-runs", type=int, default=30)
    args = parser.parse_args()
    start = time.perf_counter()
    result = {
        "command": shlex.join(["python", "bench/device_latency.py", *sys.argv[1:]]),
        "machine": machine(),
        "versions": {name: version(name) for name in ("ai-edge-litert", "tflite-micro")},
        "date": datetime.date.today().isoformat(),
        "settings": {"rounds": args.rounds, "cpu_runs": args.cpu_runs, "tflm_runs": args.tflm_runs},
        "load_start": os.getloadavg()[0],
    }
    log("building and converting the models")
    models, result["macs"] = build_models()
    result["rows"] = summarise(measure(models, args.rounds, args.cpu_runs, args.tflm_runs))
    result["ratios"] = ratios(result["rows"])
    result["load_end"] = os.getloadavg()[0]
    result["minutes"] = (time.perf_counter() - start) / 60
    RUNS.mkdir(parents=True, exist_ok=True)
    write_text(RUNS / "device_latency.json", json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    update_section("device_latency", text)
    print(text)


if __name__ == "__main__":
    main()
