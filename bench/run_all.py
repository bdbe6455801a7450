"""``make bench``: every benchmark under bench/, in a fixed order, into a fresh bench/RESULTS.md.

The previous RESULTS.md is moved to ``bench/runs/RESULTS.previous.md``; the new one starts from the header of
``results.py`` and each script appends its section (:func:`results.update_section` appends a section it does
not find), so the sections come in the order below, whatever order they were in before. Each script also
regenerates its plot. A script that fails does not stop the others: its section is carried over from the
previous file under a line saying so, and the suite exits non-zero. A last section, ``suite``, records the
command, machine, date and minutes per script.

Expected time on 2 CPU cores (the scripts' own estimates): demo 6 min, trimming criteria 306 (the settings
below), crop 35, compound shrinking 80 (reusing the crop benchmark's models, trained minutes before), QAT 12,
prune vs trim 15, devices 5, host crop 1: about 7.5 hours in all (``--list`` sums them). The cropper head
comparison (``cropper_head.py``, about 100 minutes) is run on its own: its section is carried over as it was.

    .venv/bin/python bench/run_all.py                       # everything (make bench)
    .venv/bin/python bench/run_all.py --list                # the order and the expected minutes
    .venv/bin/python bench/run_all.py --only prune_vs_trim  # some only, in the suite's order, rewritten in place
"""

import argparse
import datetime
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from results import HEADER, RESULTS, cpu_name, update_section  # noqa: E402

# The trimming benchmark beyond its main run: before fine-tuning at 90% of the MACs (reusing the main run's
# baseline, with the one-surgery ablation), steps against one surgery at half the MACs, every criterion at 70%
# and 30%, and the same comparison on a MobileNetV2-style model and on two more data sets the project makes,
# smaller; on the digits, also the fine-tune swept (8 epochs, its learning rate) and rounds at equal training;
# the fine-tune's learning rate swept on the main model too, and checked at 4e-3 on glyphs and MobileNetV2;
# everywhere, the least-squares refit after surgery against none, before fine-tuning (where the stage refits by
# default: `:norecon` rows) and after 2 epochs (where it does not: `:recon` rows), and the sensitivity allocation.
TRIM_90 = ["--fine-tune-epochs", "0", "--targets", "0.9"]
TRIM_NORECON = "taylor:norecon,random:norecon"
TRIM_RECON = "taylor,random,taylor:recon,random:recon"
TRIM_SMALL_DATA = ["--n", "5000", "--data-seeds", "1"]
# The default criterion with the budget allocated by measured sensitivity instead of one global ranking: set
# beside the main sections' taylor rows (the same seeds, baseline and fine-tune).
SENS = "taylor:sens"
SMALL_CRITERIA = "taylor,relevance,l1,random"
# The sections measured at the stage's previous fine-tune rate, kept there: the sweeps of the rate around it
# and the other criteria's grid (l1, relevance and apoz at 70% and 30%, apoz at 50%). The rest run at the
# default (FINE_TUNE_LR).
PREVIOUS_LR = "2e-3"
OLD_RATE = ["--fine-tune-lr", PREVIOUS_LR]
# The fine-tune's learning rate: 2e-3 (the unmarked rows) against a quarter to four times it.
TRIM_LRS = (
    "taylor,random,taylor:lr5e-4,random:lr5e-4,taylor:lr1e-3,random:lr1e-3,taylor:lr4e-3,random:lr4e-3,taylor:lr8e-3"
)
TRIM_LR_CHECK = "taylor,random,taylor:lr4e-3,random:lr4e-3"  # on the other data sets: 2e-3 against 4e-3
# (name, model, source, minutes of the check at 4e-3 (None for the digits, which get the whole sweep below),
# minutes of the refit's comparison after fine-tuning, minutes of the sensitivity allocation's run)
TRIM_ELSEWHERE = [
    ("trim_mobilenetv2", "mobilenetv2", "idx:/usr/share/datasets/fashion-mnist", 8, 8, 11),
    ("trim_glyphs", "resnet", "glyphs", 5, 6, 6),
    ("trim_digits", "resnet", "digits", None, 6, 6),
]
RECON_MINUTES = 12  # the refit's comparison after fine-tuning on the main model


def trim_runs():
    """The suite's entries for the trimming benchmark."""
    main_90 = [
        "--name",
        "trim_criteria_90",
        "--skip-extras",
        *TRIM_90,
        "--criteria",
        f"taylor,relevance,l1,random,taylor:steps1,{TRIM_NORECON}",
        "--baseline",
        "bench/runs/trim_criteria_baseline.keras",
    ]
    steps = [
        "--name",
        "trim_criteria_steps",
        "--skip-extras",
        "--fine-tune-epochs",
        "0",
        "--targets",
        "0.5",
        "--criteria",
        "taylor,taylor:steps1,random,random:steps1",
        "--baseline",
        "bench/runs/trim_criteria_baseline.keras",
    ]
    reuse = ["--skip-extras", "--baseline", "bench/runs/trim_criteria_baseline.keras", "--fine-tune-epochs", "2"]
    grid = ["--targets", "0.7,0.3", *reuse]
    entries = [
        ("trim_criteria", "trim_criteria.py", [], 45),
        ("trim_criteria_90", "trim_criteria.py", main_90, 10),
        ("trim_criteria_steps", "trim_criteria.py", steps, 5),
        (
            "trim_criteria_grid",
            "trim_criteria.py",
            ["--name", "trim_criteria_grid", *grid, "--criteria", "taylor,random"],
            20,
        ),
        # The same at the previous rate, on the same code: what the default's rate changed at those budgets.
        (
            "trim_criteria_grid_lr",
            "trim_criteria.py",
            [
                "--name",
                "trim_criteria_grid_lr",
                *grid,
                "--criteria",
                f"taylor:lr{PREVIOUS_LR},random:lr{PREVIOUS_LR}",
            ],
            14,
        ),
        (
            "trim_criteria_grid_rest",
            "trim_criteria.py",
            ["--name", "trim_criteria_grid_rest", *grid, *OLD_RATE, "--criteria", "l1,relevance,apoz"],
            27,
        ),
        # apoz at 50%, the grid's one cell the main section (which predates apoz) leaves out.
        (
            "trim_criteria_grid_apoz",
            "trim_criteria.py",
            ["--name", "trim_criteria_grid_apoz", *reuse, *OLD_RATE, "--targets", "0.5", "--criteria", "apoz"],
            6,
        ),
        (
            "trim_lr",
            "trim_criteria.py",
            ["--name", "trim_lr", *reuse, *OLD_RATE, "--targets", "0.5", "--criteria", TRIM_LRS],
            27,
        ),
        (
            "trim_recon",
            "trim_criteria.py",
            ["--name", "trim_recon", *reuse, "--targets", "0.5", "--criteria", TRIM_RECON],
            RECON_MINUTES,
        ),
        ("trim_sens", "trim_criteria.py", ["--name", "trim_sens", *reuse, "--targets", "0.5", "--criteria", SENS], 6),
    ]
    for name, model, source, check_minutes, recon_minutes, sens_minutes in TRIM_ELSEWHERE:
        data = ["--model", model, "--source", source, "--skip-extras", *TRIM_SMALL_DATA]
        setting = [*data, "--criteria", SMALL_CRITERIA]
        entries.append((name, "trim_criteria.py", ["--name", name, *setting], 12))
        baseline = ["--baseline", f"bench/runs/{name}_baseline.keras"]
        after = ["--name", f"{name}_90", *data, *TRIM_90, *baseline, "--criteria", f"{SMALL_CRITERIA},{TRIM_NORECON}"]
        entries.append((f"{name}_90", "trim_criteria.py", after, 4))
        two_epochs = [*data, *baseline, "--fine-tune-epochs", "2"]
        refit = ["--name", f"{name}_recon", *two_epochs, "--criteria", TRIM_RECON]
        entries.append((f"{name}_recon", "trim_criteria.py", refit, recon_minutes))
        sensitivity = ["--name", f"{name}_sens", *two_epochs, "--criteria", SENS]
        entries.append((f"{name}_sens", "trim_criteria.py", sensitivity, sens_minutes))
        if check_minutes:
            rates = ["--name", f"{name}_lr", *two_epochs, *OLD_RATE, "--criteria", TRIM_LR_CHECK]
            entries.append((f"{name}_lr", "trim_criteria.py", rates, check_minutes))
    digits = [
        "--model",
        "resnet",
        "--source",
        "digits",
        "--skip-extras",
        "--n",
        "5000",
        "--data-seeds",
        "1",
        "--baseline",
        "bench/runs/trim_digits_baseline.keras",
        "--targets",
        "0.5",
    ]
    for name, tune, criteria, minutes in (
        ("trim_digits_long", ["--fine-tune-epochs", "8"], "taylor,random", 9),
        ("trim_digits_lr", ["--fine-tune-epochs", "2", *OLD_RATE], TRIM_LRS, 11),
        ("trim_digits_rounds", ["--fine-tune-epochs", "2"], "taylor:rounds2,random:rounds2,taylor,random", 10),
    ):
        entries.append((name, "trim_criteria.py", ["--name", name, *digits, *tune, "--criteria", criteria], minutes))
    return entries  # fmt: skip


# (section name, script, arguments, expected minutes on 2 CPU cores). The section name is the one the script
# passes to update_section. compound_shrink reuses the baseline and cropper crop_pipeline has just trained.
SUITE = [
    ("demo_pipeline", "demo_pipeline.py", [], 6),
    *trim_runs(),
    ("crop_pipeline", "crop_pipeline.py", [], 35),
    ("compound_shrink", "compound_shrink.py", ["--reuse"], 80),
    ("quantize_qat", "quantize_qat.py", [], 12),
    ("prune_vs_trim", "prune_vs_trim.py", [], 15),
    ("device_latency", "device_latency.py", [], 5),
    ("host_crop", "host_crop.py", [], 1),
]
PREVIOUS = BENCH / "runs" / "RESULTS.previous.md"


def command_of(script, extra):
    return " ".join(["python", f"bench/{script}", *map(shlex.quote, extra)])


def sections(text):
    """{name: body} of the ``<!-- begin name -->`` ... ``<!-- end name -->`` sections of ``text``."""
    return {
        match.group(1): match.group(2).strip()
        for match in re.finditer(r"<!-- begin (\S+) -->\n(.*?)<!-- end \1 -->", text, re.S)
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the order and expected minutes, run nothing")
    parser.add_argument("--only", help="comma-separated section names to run (default: all)")
    args = parser.parse_args(argv)
    names = [name for name, *_ in SUITE]
    chosen = names if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}: use {', '.join(names)}")
    return args, [entry for entry in SUITE if entry[0] in chosen]


def main(argv=None):
    args, suite = parse_args(argv)
    expected = sum(minutes for *_, minutes in suite)
    if args.list:
        for name, script, extra, minutes in suite:
            print(f"{minutes:4d} min  {name:16s} {command_of(script, extra)}")
        print(f"{expected:4d} min  in all")
        return 0

    previous = RESULTS.read_text(encoding="utf-8") if RESULTS.is_file() else ""
    old = sections(previous)
    fresh = not args.only  # --only rewrites its sections in place and keeps the others, as the scripts alone do
    if fresh:
        if previous:
            PREVIOUS.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(RESULTS, PREVIOUS)
        RESULTS.write_text(HEADER, encoding="utf-8")
    command = shlex.join(["python", "bench/run_all.py", *(argv if argv is not None else sys.argv[1:])])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started, record = time.perf_counter(), []
    for index, (name, script, extra, minutes) in enumerate(suite, start=1):
        print(f"[{index}/{len(suite)}] {command_of(script, extra)} (about {minutes} min)", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(BENCH / script), *extra], cwd=ROOT, env=env)
        took = (time.perf_counter() - start) / 60
        record.append((name, script, extra, minutes, took, code))
        print(f"[{index}/{len(suite)}] {script}: exit {code}, {took:.1f} min", flush=True)
        if code != 0:
            note = (
                f"> Not regenerated by `{command}` on {datetime.date.today().isoformat()}: "
                f"`{command_of(script, extra)}` exited with {code}. "
            )
            body = old.get(name)
            update_section(name, note + ("What follows is the previous run's section.\n\n" + body if body else ""))

    if fresh:  # sections of benchmarks run on their own (the cropper head comparison) stay, as they were
        names = {name for name, *_ in SUITE} | {"suite"}
        for name, body in old.items():
            if name not in names:
                update_section(name, body)
    total = (time.perf_counter() - started) / 60
    failed = [script for _, script, _, _, _, code in record if code != 0]
    summary = f"bench/RESULTS.md {'regenerated' if fresh else 'updated'} in {total:.1f} min"
    print(summary + (f"; failed: {', '.join(failed)}" if failed else ""))
    if fresh:
        write_suite_section(command, record, total, expected)
    return 1 if failed else 0


def write_suite_section(command, record, total, expected):
    lines = [
        "## The suite: `make bench`",
        "",
        f"- Command: `make bench` (`{command}`); whole run {total:.1f} min, expected {expected} min on 2 cores",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}",
        f"- Date: {datetime.date.today().isoformat()}",
        "",
        "| section | command | exit | minutes | expected minutes |",
        "|---|---|---|---|---|",
    ]
    for name, script, extra, minutes, took, code in record:
        lines.append(f"| {name} | `{command_of(script, extra)}` | {code} | {took:.1f} | {minutes} |")
    update_section("suite", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
