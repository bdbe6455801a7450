"""Benchmark of the main job: every model of the demo recipe (Smart Scissor end to end), measured side by side.

Runs ``recipes/demo.yaml`` into ``bench/runs/demo`` and rewrites its section of ``bench/RESULTS.md`` with
the table, the latency and size ratios against the baseline, the command, the machine and the date. Every number comes
from one run, so ratios are between measurements taken minutes apart on the same machine.

    make bench-demo   (or: .venv/bin/python bench/demo_pipeline.py; `make bench` runs it first of all)
"""

import datetime
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As `make demo` runs it (the tfscissor command, cli/app.py ONEDNN_DEFAULT): oneDNN trains to different numbers.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfscissor.models.callbacks import EpochProgress  # noqa: E402
from tfscissor.recipe import load_recipe, run_recipe  # noqa: E402
from tfscissor.recipe.summary import COLUMNS  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from results import cpu_name, update_section  # noqa: E402

RECIPE = ROOT / "recipes" / "demo.yaml"
RUN_DIR = ROOT / "bench" / "runs" / "demo"


def main():
    start = time.perf_counter()
    # start="train": a benchmark measures every stage afresh, never the up-to-date skips of an earlier run.
    summary = run_recipe(
        load_recipe(RECIPE), RUN_DIR, start="train", progress=True, callbacks=lambda desc: [EpochProgress(desc)]
    )
    minutes = (time.perf_counter() - start) / 60
    rows = summary["rows"]
    base = rows[0]
    lines = [
        "## The demo (issue 19): train -> trim -> cropper and crops -> compound search -> int8 -> TFLM and Edge TPU, "
        "on the embedded `cluttered` data",
        "",
        f"- Command: `make bench-demo` (`python bench/demo_pipeline.py`, recipe `{RECIPE.relative_to(ROOT)}`)",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- Date: {datetime.date.today().isoformat()}; whole run {minutes:.1f} min",
        "- Latency: median of LiteRT on the host CPU (default threads), after warm-up; arena: smallest TFLM arena that",
        "  allocates and invokes, measured with the TFLM Python interpreter (no margin). Crop-then-classify rows count",
        "  both models (MACs, params, bytes, arenas) and time the whole pipeline (cropper, host crop, classifier)",
        "",
        "| " + " | ".join([*COLUMNS, "MACs vs baseline", "latency vs baseline", "model bytes vs baseline"]) + " |",
        "|" + "|".join("---" for _ in range(len(COLUMNS) + 3)) + "|",
    ]
    for row in rows:
        cells = [f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in COLUMNS]
        cells.append(f"{row['MACs'] / base['MACs']:.2f}x")
        cells.append(f"{row['latency ms'] / base['latency ms']:.2f}x")
        cells.append(f"{row['model bytes'] / base['model bytes']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    update_section("demo_pipeline", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
