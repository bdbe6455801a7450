"""Benchmark of the host's crop between the two stages (issue 19): numpy against the firmware's C, alone and in
the two-stage pipeline on LiteRT's CPU, against the int8 classifier alone.

The models are device_latency.py's (the demo recipe's classifier at 48x48; the two-stage pipeline is a cropper on
the whole 48x48 image, the crop policy, and the same classifier at 32x32), seeded and untrained: latency depends on
shapes and dtype, not on training. Every model and crop is timed by `tfscissor bench` (:func:`tfscissor.bench.bench`,
whose crop stage is :class:`CropPolicy` on a seeded image cut at half its side); each configuration runs once per
round, one after the other, so slow spells of a shared machine fall on all of them. A figure is the median over
rounds of each round's median. The evaluation's batched crop (many images in one call) is timed beside it. Writes
``bench/runs/host_crop.json`` and this benchmark's section of ``bench/RESULTS.md``.

    .venv/bin/python bench/host_crop.py     (about a minute on 2 cores)
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
from device_latency import CROP, IMAGE, build_models  # noqa: E402
from results import log, machine, update_section  # noqa: E402

RUNS = ROOT / "bench" / "runs"
THREADS = (1, 2)
BACKENDS = ("numpy", "c")
BATCH = 256  # images per call in the batched crop, as evaluation crops a split


def threads_name(threads):
    return f"{threads} thread{'s' if threads > 1 else ''}"


def measure(models, rounds, runs):
    """{(what, threads): [bench result of each round]}: ``what`` is "classifier" or a crop backend."""
    from tfscissor.bench import bench

    results = {}
    for round_index in range(rounds):
        for threads in THREADS:
            options = {"runs": runs, "warmup": runs // 10, "num_threads": threads}
            results.setdefault(("classifier", threads), []).append(bench(models["int8"], **options))
            for backend in BACKENDS:
                result = bench(models["classifier32"], cropper=models["cropper"], crop_backend=backend, **options)
                results.setdefault((backend, threads), []).append(result)
        log(f"round {round_index + 1}/{rounds} done")
    return results


def batched_crop(rounds, runs):
    """Per-image median ms of each backend cropping BATCH seeded images at boxes around the bench's crop box."""
    import numpy as np

    from tfscissor.bench.devices import CROP_BOX
    from tfscissor.bench.timing import time_invocations
    from tfscissor.deploy.crop_policy import CropPolicy

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH, *IMAGE), dtype=np.uint8)
    boxes = (np.array(CROP_BOX) + rng.uniform(-0.2, 0.2, (BATCH, 4))).astype(np.float32)
    medians = {backend: [] for backend in BACKENDS}
    for _ in range(rounds):
        for backend in BACKENDS:
            stats = time_invocations(lambda b=backend: CropPolicy().crop(images, boxes, CROP, backend=b), runs, 1)
            medians[backend].append(stats["median_ms"] / BATCH)
    return {backend: statistics.median(values) for backend, values in medians.items()}


def summarise(results):
    """Per configuration: the median over rounds of the total's and of each stage's median, and the range."""
    rows = {}
    for key, rounds in results.items():
        totals = [r["total"]["median_ms"] for r in rounds]
        rows[key] = {
            "median_ms": statistics.median(totals),
            "low_ms": min(totals),
            "high_ms": max(totals),
            "stages": {
                stage: statistics.median(r["stages"][stage]["median_ms"] for r in rounds)
                for stage in rounds[0]["stages"]
            },
            "crop_backend": rounds[0]["stages"].get("crop", {}).get("backend"),
        }
    return rows


def ratios(rows):
    lines = []
    for threads in THREADS:
        alone = rows[("classifier", threads)]["median_ms"]
        for backend in BACKENDS:
            row = rows[(backend, threads)]
            share, name = row["stages"]["crop"] / row["median_ms"], threads_name(threads)
            lines.append((f"two-stage ({backend} crop) / classifier alone, {name}", row["median_ms"] / alone))
            lines.append((f"crop's share of the two-stage time ({backend} crop), {name}", share))
    numpy_crop = statistics.median(rows[("numpy", t)]["stages"]["crop"] for t in THREADS)
    c_crop = statistics.median(rows[("c", t)]["stages"]["crop"] for t in THREADS)
    lines.append(("numpy crop / C crop, one image", numpy_crop / c_crop))
    return lines, {"numpy": numpy_crop, "c": c_crop}


def markdown(result):
    rows, settings = result["rows"], result["settings"]
    lines = [
        "## Host crop (issue 19): numpy against the firmware's C, in the two-stage pipeline on LiteRT's CPU",
        "",
        f"- Command: `{result['command']}` (whole run {result['minutes']:.1f} min)",
        f"- Machine: {result['machine']}, ai-edge-litert {result['versions']['ai-edge-litert']}; load average "
        f"{result['load_start']:.2f} at the start, {result['load_end']:.2f} at the end (other work on the machine "
        "slows the timings)",
        f"- Date: {result['date']}",
        f"- Models: device_latency.py's, seeded and untrained: the demo recipe's int8 classifier at "
        f"{IMAGE[0]}x{IMAGE[1]} alone; two-stage: the int8 cropper on the {IMAGE[0]}x{IMAGE[1]} image, the host's "
        f"crop policy (a {IMAGE[0] // 2}-px window resized to {CROP}x{CROP}), the classifier at {CROP}x{CROP}.",
        "- Crop: `CropPolicy().crop` on one image per call, as `tfscissor bench` times it, by numpy (the reference) "
        "or by `firmware/tflm/two_stage/crop_policy.c` built into `tfscissor.deploy._crop_policy_c` (the default "
        "where it is built); both give the same bytes (tests/crop/test_policy_backends.py).",
        f"- Each row: {settings['rounds']} rounds of {settings['runs']} timed runs per stage after "
        f"{settings['runs'] // 10} warm-up runs; a row's median is the median over rounds of the sum of its stages' "
        "medians; range: the lowest and highest round.",
        "",
        "| configuration | median ms | range ms | stages: median ms |",
        "|---|---|---|---|",
    ]
    for (what, threads), row in rows.items():
        name = "int8 classifier alone" if what == "classifier" else f"two-stage, {what} crop"
        stages = ", ".join(f"{stage} {ms:.3f}" for stage, ms in row["stages"].items()) if len(row["stages"]) > 1 else ""
        lines.append(
            f"| {name}, cpu {threads_name(threads)} | {row['median_ms']:.3f} | {row['low_ms']:.3f}-{row['high_ms']:.3f} | "
            f"{stages} |"
        )
    crop, batched = result["crop_ms"], result["batched_ms"]
    lines += [
        "",
        "| host crop, ms per image | numpy | C | numpy / C |",
        "|---|---|---|---|",
        f"| one image per call (the bench's crop stage) | {crop['numpy']:.4f} | {crop['c']:.4f} | "
        f"{crop['numpy'] / crop['c']:.1f}x |",
        f"| {BATCH} distinct images per call, boxes jittered by up to 0.2 (12- to 48-px windows; evaluation) | "
        f"{batched['numpy']:.4f} | {batched['c']:.4f} | "
        f"{batched['numpy'] / batched['c']:.1f}x |",
        "",
        "| ratio of medians | value |",
        "|---|---|",
    ]
    lines += [
        f"| {name} | {value:.0%} |" if "share" in name else f"| {name} | {value:.2f}x |"
        for name, value in result["ratios"]
    ]
    one, two = (rows[("classifier", threads)]["median_ms"] for threads in THREADS)
    if two >= one:
        lines += ["", "2 threads were no faster than 1 in this run: the machine's other work held the second core."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    from tfscissor.deploy.crop_policy import crop_backend

    if crop_backend() != "c":
        sys.exit("the C crop is not built (tfscissor.deploy._crop_policy_c): reinstall with a C compiler, make install")
    start = time.perf_counter()
    result = {
        "command": shlex.join(["python", "bench/host_crop.py", *sys.argv[1:]]),
        "machine": machine(),
        "versions": {"ai-edge-litert": version("ai-edge-litert")},
        "date": datetime.date.today().isoformat(),
        "settings": {"rounds": args.rounds, "runs": args.runs},
        "load_start": os.getloadavg()[0],
    }
    log("building and converting the models")
    models, _ = build_models()
    raw = measure(models, args.rounds, args.runs)
    rows = summarise(raw)
    result["ratios"], result["crop_ms"] = ratios(rows)
    result["batched_ms"] = batched_crop(args.rounds, max(args.runs // 25, 5))
    result["rows"] = {f"{what}, {threads_name(threads)}": row for (what, threads), row in rows.items()}
    result["load_end"] = os.getloadavg()[0]
    result["minutes"] = (time.perf_counter() - start) / 60
    RUNS.mkdir(parents=True, exist_ok=True)
    write_text(RUNS / "host_crop.json", json.dumps(result, indent=2) + "\n")
    text = markdown({**result, "rows": rows})
    update_section("host_crop", text)
    print(text)


if __name__ == "__main__":
    main()
