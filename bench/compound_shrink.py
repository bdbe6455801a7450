"""Benchmark of compound shrinking (issue 5) on cluttered Fashion-MNIST: one dimension at a time against the
(depth, width, resolution) search, with and without Smart Scissor's cropper, at 50% and 25% of the MACs.

Every row starts from the same trained baseline: the crop benchmark's 96-px ResNet-style classifier (blocks
2,2,2, widths 16,32,64, stride-2 stem, 10 epochs; ``bench/crop_pipeline.py`` trains it and its cropper, and
both are shared through the cache in ``bench/runs/``). Each row shrinks it to within the budget and then gets
the same fine-tune (epochs, learning rate, batch, seed; with ``--distill 1``, the default, distilled from the
baseline's outputs on the whole 96-px images, as ``tfscissor shrink`` does with ``--teacher``):

* width: relevance trimming (:func:`trim_model`, ``target_macs``), whole images at 96 px;
* depth: the lowest-relevance residual blocks removed (:func:`removal_order`) until the MACs fit, at most one
  block per stage kept; when removing every removable block is not enough, the row says so and its MACs;
* resolution: the largest side (in steps of 4 px) whose MACs fit, whole images resized;
* resolution + crop: the same on the cropper's crops, its MACs counted in the budget;
* resolution + crop at the true boxes: the same on crops at the data's true boxes, the cropper's MACs still
  counted (a perfect cropper of the same cost): the most that better boxes could give at that resolution;
* compound: :func:`tfscissor.shrink.search` on whole images (grid, then refinement), its winner;
* crop + compound: the search on the cropper's crops with the cropper's MACs added to every candidate.

Each search runs once per candidate score in ``--scores`` (``bn``: accuracy after batch-norm re-estimation;
``tune``: after one short epoch too; the default is ``tune`` alone, since ``bn`` ranks width-trimmed candidates,
which fine-tuning recovers most, too low, and both double the time); with both, the goals take the one more
accurate on the selection split.

Selection is kept off the test images: the search scores its candidates and picks among its fine-tuned best
on a *selection* split (the val splits of two more data seeds, objects unseen in training), every fine-tune
monitors that split, and every accuracy reported is on the crop benchmark's val split (the test images here).
A control row fine-tunes the unshrunk baseline with the same budget, since the fine-tune itself adds training.

Writes ``bench/runs/compound_shrink.json`` (after every row), ``bench/runs/compound_shrink.md`` (also its
section of ``bench/RESULTS.md``, and printed) and the plot ``bench/compound_shrink.png``. ``--quick`` is a smoke
run (tiny data, 1 epoch, one budget, a small grid) that writes ``bench/runs/compound_shrink_quick.*`` and leaves
``bench/RESULTS.md`` alone. Progress goes to stderr.

    .venv/bin/python bench/compound_shrink.py --reuse    # about 80 minutes on 2 CPU cores, plus about 15
                                                         # to train the baseline and cropper when not cached
    .venv/bin/python bench/compound_shrink.py --report   # render the saved run again
    .venv/bin/python bench/compound_shrink.py --reuse --only oracle_crop   # (re)measure some rows only
    .venv/bin/python bench/compound_shrink.py --quick    # about 3 minutes
"""

import argparse
import datetime
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As the tfscissor command does (tfscissor/cli/app.py, ONEDNN_DEFAULT): oneDNN crashes training some trimmed models.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tfscissor.io import write_text  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import crop_pipeline  # noqa: E402
from crop_pipeline import EpochLine, data_specs, load_benchmark_data  # noqa: E402
from results import log, machine, plural, update_section  # noqa: E402

RUNS = ROOT / "bench" / "runs"
KINDS = {
    "control": "baseline, fine-tuned again (not shrunk)",
    "width": "width (relevance trimming)",
    "depth": "depth (block removal)",
    "resolution": "resolution, whole image",
    "crop_resolution": "resolution + crop",
    "oracle_crop": "resolution + crop at the true boxes (oracle)",
    "compound_bn": "compound search (bn score), whole image",
    "compound_tune": "compound search (tune score), whole image",
    "crop_compound_bn": "crop + compound search (bn score)",
    "crop_compound_tune": "crop + compound search (tune score)",
}
SCORE_WORDS = {"bn": "accuracy after batch-norm re-estimation", "tune": "accuracy after one short epoch"}
# The searches: kind -> (on the cropper's crops, candidate score).
SEARCHES = {
    "crop_compound_bn": (True, "bn"),
    "crop_compound_tune": (True, "tune"),
    "compound_bn": (False, "bn"),
    "compound_tune": (False, "tune"),
}
SINGLE = ("width", "depth", "resolution", "crop_resolution")
# The rows that depend on the cropper: its boxes, or its MACs in the budget (the oracle's).
CROPPED = ("crop_resolution", "oracle_crop", *(kind for kind, (cropped, _) in SEARCHES.items() if cropped))
CROPPER_SETTINGS = ("cropper_epochs",)  # what of the cropper's training the command line can change

# Defaults, sized so that the whole benchmark runs in about 80 minutes on 2 CPU cores (see the docstring). The
# data, baseline and cropper settings are the crop benchmark's, so its cached models are reused.
FULL = {
    **crop_pipeline.FULL,
    "selection_seeds": 2,
    "budgets": "0.5,0.25",
    "fine_tune_epochs": 3,
    "distill": 1,
    "fine_tune_lr": 1e-3,
    "depths": "0,1,2",
    "widths": "1,0.75,0.5",
    "resolutions": "96,88,80,72,64,56,48",
    "crop_resolutions": "80,72,64,56,48,40",
    "refine_steps": 3,
    "refine_pairs": 4,
    "scores": "tune",
    "tune_images": 1024,
    "calibration": 256,
    "top": 2,
}
QUICK = {
    **crop_pipeline.QUICK,
    **{k: v for k, v in FULL.items() if k not in crop_pipeline.FULL},
    "selection_seeds": 1,
    "budgets": "0.5",
    "fine_tune_epochs": 1,
    "depths": "0,1",
    "widths": "1,0.5",
    "resolutions": "96,64",
    "crop_resolutions": "64,48",
    "refine_steps": 1,
    "refine_pairs": 1,
    "scores": "bn,tune",
    "top": 1,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, 1 epoch, one budget (~3 min)")
    parser.add_argument("--budgets", help=f"fractions of the baseline's MACs ({FULL['budgets']})")
    parser.add_argument("--fine-tune-epochs", type=int, help=f"epochs of every row ({FULL['fine_tune_epochs']})")
    parser.add_argument("--cropper-epochs", type=int, help=f"the cropper's training epochs ({FULL['cropper_epochs']})")
    parser.add_argument("--distill", type=int, choices=(0, 1), help=f"distil from the baseline ({FULL['distill']})")
    parser.add_argument("--fine-tune-lr", type=float, help=f"fine-tune learning rate, cosine ({FULL['fine_tune_lr']})")
    parser.add_argument("--depths", help=f"search grid: blocks removed ({FULL['depths']})")
    parser.add_argument("--widths", help=f"search grid: MAC fractions width keeps ({FULL['widths']})")
    parser.add_argument("--resolutions", help=f"search grid, whole images ({FULL['resolutions']})")
    parser.add_argument("--crop-resolutions", help=f"search grid, crops ({FULL['crop_resolutions']})")
    parser.add_argument("--refine-steps", type=int, help=f"bisection steps per pair ({FULL['refine_steps']})")
    parser.add_argument("--refine-pairs", type=int, help=f"(depth, resolution) pairs refined ({FULL['refine_pairs']})")
    parser.add_argument("--scores", help=f"candidate scores, one search each: bn, tune ({FULL['scores']})")
    parser.add_argument("--top", type=int, help=f"candidates the search fine-tunes ({FULL['top']})")
    parser.add_argument(
        "--reuse", action="store_true", help="load the crop benchmark's cached baseline and cropper when they match"
    )
    parser.add_argument(
        "--only",
        help="measure only these rows (comma-separated kinds, e.g. oracle_crop) with the saved run's settings, "
        "replacing its rows of those kinds; with --cropper-epochs, every row that depends on the cropper",
    )
    parser.add_argument(
        "--report", action="store_true", help="only render the saved run's JSON again (Markdown, plot, RESULTS.md)"
    )
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    for key in FULL:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    for key in ("depths", "resolutions", "crop_resolutions"):
        settings[key] = [int(v) for v in str(settings[key]).split(",")]
    for key in ("budgets", "widths"):
        settings[key] = [float(v) for v in str(settings[key]).split(",")]
    settings["scores"] = [v.strip() for v in str(settings["scores"]).split(",")]
    return args, crop_pipeline.resolution_lists(settings)


# --- data ------------------------------------------------------------------------------------------------


def load_selection(settings):
    """The val splits of ``selection_seeds`` more data seeds: the search's selection images."""
    from tfscissor.data.dataset import Split

    first = settings["data_seed"] + settings["data_seeds"]
    specs = data_specs({**settings, "data_seed": first, "data_seeds": settings["selection_seeds"]})
    joined = load_benchmark_data(specs).val
    return Split(joined.images, joined.labels, joined.boxes), specs


def tuning_and_test(dataset, selection):
    """(the search's and fine-tunes' data: train images, selection as val; the test data: the test images as
    val), whole images at the data's size: also what the teacher (the 96-px baseline) sees, in the same order."""
    from tfscissor.data.dataset import Dataset

    tuning = Dataset(dataset.spec, dataset.class_names, dataset.train, selection)
    test = Dataset(dataset.spec, dataset.class_names, selection, dataset.val)  # val: the test images
    return tuning, test


def views(dataset, selection, cropper=None, boxes="predicted"):
    """(``data_at`` for the search and the fine-tunes; ``test_at``: the test images at a resolution), on whole
    images, on ``cropper``'s crops, or with ``boxes="true"`` on crops at the true boxes (what a perfect cropper
    would give)."""
    from tfscissor.crop.pipeline import cropped, cropped_at
    from tfscissor.shrink import resized

    tuning, test = tuning_and_test(dataset, selection)
    if boxes == "true":
        return cropped_at(tuning, tuning.train.boxes, tuning.val.boxes), _val_of(
            cropped_at(test, test.train.boxes, test.val.boxes)
        )
    if cropper is None:
        return resized(tuning), _val_of(resized(test))
    return cropped(tuning, cropper), _val_of(cropped(test, cropper))


def _val_of(data_at):
    return lambda resolution: data_at(resolution).val


# --- rows ------------------------------------------------------------------------------------------------


def macs_of(model):
    from tfscissor.analysis import profile_model

    return profile_model(model).macs


def fine_tune(model, data, settings, desc, teacher):
    from tfscissor.models.training import train_classifier

    start = time.perf_counter()
    history = train_classifier(
        model,
        data,
        epochs=settings["fine_tune_epochs"],
        batch_size=64,
        learning_rate=settings["fine_tune_lr"],
        seed=settings["seed"],
        callbacks=[EpochLine(desc)],
        **teacher,
    )
    return {"fine_tune_seconds": time.perf_counter() - start, "selection_accuracy": history["val_accuracy"][-1]}


def finish(kind, budget, model, resolution, data_at, test_at, settings, base, beside=0, teacher=None, **extra):
    """Fine-tune ``model`` at ``resolution`` and measure it: one row."""
    from tfscissor.models.training import evaluate_classifier

    row = {"kind": kind, "budget": budget, "resolution": resolution, "params": _params(model), **extra}
    row["macs"] = macs_of(model) + beside
    row["share"] = row["macs"] / base["macs"]
    row.update(fine_tune(model, data_at(resolution), settings, f"{kind} at {budget:.0%}", teacher or {}))
    row["accuracy"] = evaluate_classifier(model, test_at(resolution))
    return row


def _params(model):
    from tfscissor.analysis import profile_model

    return profile_model(model).params


def width_row(baseline, budget, calib, data_at, test_at, settings, base, teacher):
    from tfscissor.trim import collect_statistics, tap_names, trim_model

    start = time.perf_counter()
    statistics = collect_statistics(baseline, calib, tap_names(baseline))
    model = trim_model(baseline, statistics, target_macs=budget).model
    seconds = time.perf_counter() - start
    own = settings["size"]
    return finish(
        "width", budget, model, own, data_at, test_at, settings, base, teacher=teacher, shrink_seconds=seconds
    )


def depth_row(baseline, budget, order, data_at, test_at, settings, base, teacher):
    from tfscissor.shrink import remove_blocks

    bound = budget * base["macs"]
    for count in range(len(order) + 1):
        model = remove_blocks(baseline, order[:count]) if count else _copy(baseline)
        if macs_of(model) <= bound:
            break
    own = settings["size"]
    return finish("depth", budget, model, own, data_at, test_at, settings, base, teacher=teacher, blocks=count)


def resolution_row(kind, baseline, budget, data_at, test_at, settings, base, teacher, beside=0):
    from tfscissor.models.graph import with_input_size

    bound = budget * base["macs"]
    for resolution in range(settings["size"], 7, -4):
        model = with_input_size(baseline, resolution)
        if macs_of(model) + beside <= bound:
            break
    return finish(kind, budget, model, resolution, data_at, test_at, settings, base, beside=beside, teacher=teacher)


def compound_row(kind, baseline, budget, data_at, test_at, settings, base, resolutions, teacher, beside=0, score="bn"):
    from tfscissor.models.training import evaluate_classifier
    from tfscissor.shrink import parse_budget, search

    def progress(row):
        fits = f"score {row['score']:.4f}" if row.get("feasible") else "over budget"
        log(
            f"  {kind} {budget:.0%} {row['stage']} {row['candidate']}: {row.get('costs', {}).get('macs', 0):,} MACs, {fits}"
        )

    start = time.perf_counter()
    result = search(
        baseline,
        data_at,
        parse_budget(f"macs={budget}"),
        depths=settings["depths"],
        widths=settings["widths"],
        resolutions=resolutions,
        refine_steps=settings["refine_steps"],
        refine_pairs=settings["refine_pairs"],
        beside={"macs": beside} if beside else None,
        calibration=settings["calibration"],
        score=score,
        tune_images=settings["tune_images"],
        score_samples=10**9,
        top=settings["top"],
        fine_tune_epochs=settings["fine_tune_epochs"],
        learning_rate=settings["fine_tune_lr"],
        seed=settings["seed"],
        progress=progress,
        callbacks=[EpochLine(f"{kind} at {budget:.0%}")],
        **teacher,
    )
    seconds = time.perf_counter() - start
    winner = next(r for r in result.rows if r["candidate"] == str(result.candidate))
    c = result.candidate
    row = {
        "kind": kind,
        "score": score,
        "budget": budget,
        "resolution": c.resolution,
        "depth": c.depth,
        "width": c.width,
        "params": _params(result.model),
        "macs": winner["costs"]["macs"],
        "share": winner["costs"]["macs"] / base["macs"],
        "selection_accuracy": winner["accuracy"],
        "accuracy": evaluate_classifier(result.model, test_at(c.resolution)),
        "search_seconds": seconds,
        "candidates": len(result.rows),
        "scored": sum(r["feasible"] for r in result.rows),
        "search_rows": [
            {k: r.get(k) for k in ("depth", "width", "resolution", "stage", "feasible", "score", "accuracy")}
            | {"macs": r.get("costs", {}).get("macs")}
            for r in result.rows
        ],
    }
    return row


def _copy(model):
    from tfscissor.models.graph import with_input_size

    return with_input_size(model, int(model.input_shape[1]))


# --- report ----------------------------------------------------------------------------------------------


def standard_error(accuracy, count):
    return math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / count)


def chosen(rows, kinds):
    """Of the search rows of ``kinds``, the one most accurate on the selection split (never on the test)."""
    found = [rows[k] for k in kinds if k in rows]
    return max(found, key=lambda r: r["selection_accuracy"]) if found else None


# Issue 19's goals for crop + compound: points above the 10-epoch baseline at each budget.
MARGINS = {0.25: 0.0, 0.5: 5.0}


def goals(result):
    """Per budget: does the compound beat every single dimension, and crop + compound the baseline? Each
    search is the better of its two scores on the selection split."""
    out = {}
    base, base_macs = result["baseline"]["accuracy"], result["baseline"]["macs"]
    for budget in result["settings"]["budgets"]:
        rows = {r["kind"]: r for r in result["rows"] if r.get("budget") == budget}
        crop = chosen(rows, [k for k, (cropped, _) in SEARCHES.items() if cropped])
        whole = chosen(rows, [k for k, (cropped, _) in SEARCHES.items() if not cropped])
        if crop is None:
            continue
        compound = chosen({"a": crop, **({"b": whole} if whole else {})}, ["a", "b"])
        # Width trimming and the resolution steps can land above the budget; such a row does not count.
        singles = {k: rows[k]["accuracy"] for k in SINGLE if k in rows and rows[k]["macs"] <= budget * base_macs}
        moved = [compound["depth"] > 0, compound["width"] < 1, compound["resolution"] != result["settings"]["size"]]
        whole_singles = {k: v for k, v in singles.items() if k != "crop_resolution"}
        out[str(budget)] = {
            "whole_compound": whole["accuracy"] if whole else None,
            "whole_singles": whole_singles,
            "whole_beats_singles": bool(whole) and all(whole["accuracy"] > a for a in whole_singles.values()),
            "singles": singles,
            "dimensions_moved": sum(moved),
            "compound_kind": compound["kind"],
            "compound": compound["accuracy"],
            "beats_singles": all(compound["accuracy"] > a for a in singles.values()),
            "crop_compound_kind": crop["kind"],
            "crop_compound": crop["accuracy"],
            "at_baseline": crop["accuracy"] >= base,
            "margin": MARGINS.get(budget),
            "meets_margin": MARGINS.get(budget) is not None and 100 * (crop["accuracy"] - base) >= MARGINS[budget],
        }
    return out


def markdown(result):
    s, base = result["settings"], result["baseline"]
    control = next((r for r in result["rows"] if r["kind"] == "control"), None)
    lines = [
        "## Compound shrinking on cluttered Fashion-MNIST: one dimension against the (depth, width, resolution) search",
        "",
        f"- Command: `{result['command']}`"
        + "".join(f", then `{added}`" for added in result.get("added", []))
        + f" (whole run {result['minutes']:.1f} min)",
        f"- Machine: {result['machine']}; load average {result['load_start']:.2f} at the start, "
        f"{result.get('load_end', float('nan')):.2f} at the end",
        f"- Date: {result['date']}",
        f"- Data: the crop benchmark's ({result['train_images']} train images; its {result['test_images']} val "
        f"images are the test images here), plus a selection split of {result['selection_images']} images (the val "
        f"splits of {plural(s['selection_seeds'], 'more data seed')}), on which the search scores and picks and "
        "every fine-tune is monitored; no choice sees the test images",
        f"- Baseline: the crop benchmark's 96-px classifier (blocks 2,2,2, widths 16,32,64, stride-2 stem), "
        f"{base['epochs']} epochs: {base['macs']:,} MACs, {base['params']:,} params, test accuracy "
        f"**{base['accuracy']:.4f}**",
        f"- Cropper: {result['cropper_macs']:,} MACs ({result['cropper_macs'] / base['macs']:.1%} of the baseline), "
        f"trained {plural(s['cropper_epochs'], 'epoch')}"
        + (f", val mean IoU {result['cropper_val_iou']:.3f}" if "cropper_val_iou" in result else "")
        + "; counted in the MACs of the crop rows (also of the oracle row, whose crops are at the true boxes: a "
        "perfect cropper of the same cost)",
        f"- Every row: shrunk from the baseline, then {plural(s['fine_tune_epochs'], 'epoch')} of fine-tuning at lr "
        f"{s['fine_tune_lr']} (cosine), batch 64, seed {s['seed']}"
        + (
            ", distilled from the baseline's outputs on the whole 96-px images (half the loss, temperature 2)"
            if s.get("distill")
            else ", on the labels alone"
        )
        + f". The search: grid depths {s['depths']}, widths "
        f"{s['widths']}, resolutions {s['resolutions']} (crops: {s['crop_resolutions']}), then "
        f"{s['refine_steps']} bisection steps on the {s['refine_pairs']} best (depth, resolution) pairs; "
        f"candidates scored by {' and by '.join(SCORE_WORDS[k] for k in s['scores'])} on the selection split; "
        f"the {s['top']} best fine-tuned, the better on the selection split kept"
        + (
            f" (so a search picks among {s['top']} fine-tuned models where a single-dimension row has one: a "
            "slightly optimistic edge)"
            if s["top"] > 1
            else ""
        ),
        "",
        "| budget | method | chosen | MACs | % of baseline | params | test accuracy | vs baseline | search |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(result["rows"], key=lambda r: (-r.get("budget", 2), list(KINDS).index(r["kind"]))):
        chosen = {
            "width": f"{r['resolution']} px, channels by relevance",
            "depth": f"{plural(r.get('blocks', 0), 'block')} removed",
            "control": f"{r['resolution']} px",
        }.get(r["kind"], f"{r['resolution']} px")
        if r["kind"] in SEARCHES:
            chosen = f"d-{r['depth']}, w {r['width']:g}, {r['resolution']} px"
        if r["kind"] != "control" and r["macs"] > r["budget"] * base["macs"]:
            chosen += " (**over budget**: the closest this dimension gets)"
        search = (
            f"{r['search_seconds'] / 60:.1f} min, {r['candidates']} candidates ({r['scored']} within)"
            if "search_seconds" in r
            else "-"
        )
        budget = "-" if r["kind"] == "control" else f"{r['budget']:.0%}"
        lines.append(
            f"| {budget} | {KINDS[r['kind']]} | {chosen} | {r['macs']:,} | {r['share']:.1%} | {r['params']:,} | "
            f"**{r['accuracy']:.4f}** | {100 * (r['accuracy'] - base['accuracy']):+.2f} | {search} |"
        )
    lines.append("")
    for budget, g in result.get("goals", {}).items():
        singles = ", ".join(f"{KINDS[k]} {v:.4f}" for k, v in g["singles"].items())
        lines += [
            f"At {float(budget):.0%}: the compound search chosen on the selection split ({KINDS[g['compound_kind']]}, "
            f"{g['compound']:.4f}) against the single dimensions within budget ({singles}): "
            f"{'**met**' if g['beats_singles'] else '**not met**'}"
            + (" (the search chose a single dimension itself)" if g["dimensions_moved"] == 1 else "")
            + f". Crop + compound ({KINDS[g['crop_compound_kind']]}) "
            f"{g['crop_compound']:.4f} against the baseline {base['accuracy']:.4f}: "
            f"{'**met**' if g['at_baseline'] else '**not met**'}"
            + (
                f" (and against the baseline fine-tuned again, {control['accuracy']:.4f}: "
                f"{'met' if g['crop_compound'] >= control['accuracy'] else 'not met'})"
                if control
                else ""
            )
            + ".",
            "",
        ]
        rows = {r["kind"]: r for r in result["rows"] if r.get("budget") == float(budget)}
        if "oracle_crop" in rows and "crop_resolution" in rows:
            learned, oracle = rows["crop_resolution"], rows["oracle_crop"]
            lines += [
                f"Box quality at {float(budget):.0%}: at {learned['resolution']} px the cropper's crops reach "
                f"{learned['accuracy']:.4f}, crops at the true boxes {oracle['accuracy']:.4f} "
                f"({100 * (oracle['accuracy'] - base['accuracy']):+.2f} points against the baseline): better boxes "
                f"could add up to {100 * (oracle['accuracy'] - learned['accuracy']):.2f} points.",
                "",
            ]
        if g.get("margin") is not None:
            lines += [
                f"Issue 19's goal at {float(budget):.0%}, crop + compound at least {g['margin']:g} points above the "
                f"baseline: {'**met**' if g['meets_margin'] else '**not met**'} "
                f"({100 * (g['crop_compound'] - base['accuracy']):+.2f} points).",
                "",
            ]
        if g.get("whole_compound") is not None:
            margins = ", ".join(
                f"{100 * (g['whole_compound'] - v):+.2f} vs {KINDS[k]}" for k, v in g["whole_singles"].items()
            )
            lines += [
                f"Without the cropper, at {float(budget):.0%}: the whole-image search {g['whole_compound']:.4f} "
                f"beats every whole-image single dimension within budget: "
                f"{'**yes**' if g['whole_beats_singles'] else '**no**'} ({margins} points).",
                "",
            ]
    se = 100 * standard_error(base["accuracy"], result["test_images"])
    lines += [
        f"Noise: one seed; the binomial standard error of an accuracy near {100 * base['accuracy']:.0f}% on "
        f"{result['test_images']} test images is {se:.2f} points, so differences under about "
        f"{2 * math.sqrt(2) * se:.1f} points are noise.",
        "",
    ]
    if result.get("plot"):
        lines += [f"![accuracy of each method at each budget, and the search's candidates]({result['plot']})", ""]
    return "\n".join(lines)


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, base = result["settings"], result["baseline"]
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(13, 6), gridspec_kw={"width_ratios": [1.2, 1]})
    shown_kinds = [k for k in KINDS if k != "control"]
    palette = [
        *("tab:blue", "tab:orange", "tab:green", "tab:olive", "tab:cyan"),
        *("tab:purple", "tab:pink", "tab:red", "tab:brown"),
    ]
    colours = dict(zip(shown_kinds, palette, strict=True))
    kinds = [k for k in shown_kinds if any(r["kind"] == k for r in result["rows"])]  # the searches that ran
    step = 0.8 / len(kinds)
    for i, budget in enumerate(s["budgets"]):
        for j, kind in enumerate(kinds):
            row = next((r for r in result["rows"] if r["kind"] == kind and r.get("budget") == budget), None)
            if row is None:
                continue
            x = i + (j - (len(kinds) - 1) / 2) * step
            hatch = None if row["macs"] <= budget * base["macs"] else "//"
            bars.bar(
                x,
                100 * row["accuracy"],
                step * 0.9,
                color=colours[kind],
                hatch=hatch,
                label=KINDS[kind] if i == 0 else None,
            )
            bars.annotate(f"{row['share']:.0%}", (x, 100 * row["accuracy"]), ha="center", va="bottom", fontsize=6)
    bars.axhline(100 * base["accuracy"], color="black", linestyle="--", label=f"baseline ({base['epochs']} epochs)")
    control = next((r for r in result["rows"] if r["kind"] == "control"), None)
    if control:
        bars.axhline(100 * control["accuracy"], color="grey", linestyle=":", label="baseline fine-tuned again")
    accuracies = [100 * r["accuracy"] for r in result["rows"]] + [100 * base["accuracy"]]
    bars.set_ylim(min(accuracies) - 5, max(accuracies) + 3)
    bars.set_xticks(range(len(s["budgets"])))
    bars.set_xticklabels([f"{b:.0%} of the baseline's MACs" for b in s["budgets"]])
    bars.set_ylabel("test accuracy (%), after the same fine-tune")
    bars.set_title("Each method at each budget (bar label: MACs used; hatched: over budget)", fontsize=9)
    bars.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    bars.grid(axis="y", alpha=0.3)

    shown = result["settings"]["scores"][0]
    searched = [r for r in result["rows"] if r["kind"] in SEARCHES and r["score"] == shown]
    markers = {f"compound_{shown}": "o", f"crop_compound_{shown}": "s"}
    sides = [c["resolution"] for row in searched for c in row["search_rows"] if c["feasible"]]
    for row in searched:
        points = [c for c in row["search_rows"] if c["feasible"]]
        scatter.scatter(
            [c["macs"] / base["macs"] for c in points],
            [100 * c["score"] for c in points],
            c=[c["resolution"] for c in points],
            cmap="viridis",
            vmin=min(sides),
            vmax=max(sides),
            marker=markers[row["kind"]],
            s=[14 + 10 * c["depth"] for c in points],
            alpha=0.7,
            label=f"{KINDS[row['kind']]}, {row['budget']:.0%}",
        )
        chosen = next(
            c
            for c in points
            if [c[k] for k in ("depth", "width", "resolution")] == [row[k] for k in ("depth", "width", "resolution")]
        )
        scatter.scatter(
            [chosen["macs"] / base["macs"]], [100 * chosen["score"]], marker="*", s=160, color="black", zorder=3
        )
    if searched:
        scatter.figure.colorbar(scatter.collections[0], ax=scatter, label="resolution (px)")
        scatter.plot([], [], "*", color="black", markersize=10, label="chosen (after fine-tuning)")
    scatter.set_xlabel("MACs / baseline MACs (cropper included for crops)")
    scatter.set_ylabel(f"candidate score (%), {shown}: accuracy on the selection split")
    scatter.set_title("The searches' candidates within budget (marker size: blocks removed)", fontsize=9)
    legend = scatter.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    for handle in legend.legend_handles[: len(searched)]:
        handle.set_color("grey")  # the markers, not the colours, tell the two searches apart
    scatter.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- main ------------------------------------------------------------------------------------------------


def main(argv=None):
    from tfscissor.models.training import evaluate_classifier
    from tfscissor.shrink import block_relevance, removal_order

    args, settings = parse_args(argv)
    name = "compound_shrink_quick" if args.quick else "compound_shrink"
    crop_name = "crop_pipeline_quick" if args.quick else "crop_pipeline"
    json_path, md_path = RUNS / f"{name}.json", RUNS / f"{name}.md"
    plot_path = RUNS / f"{name}.png" if args.quick else ROOT / "bench" / "compound_shrink.png"
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.report:
        return report(json.loads(json_path.read_text()), json_path, md_path, plot_path, args.quick)
    started = time.perf_counter()
    command = " ".join(["python bench/compound_shrink.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    only = set(args.only.split(",")) if args.only else None
    if only:
        if only - set(KINDS):
            raise SystemExit(f"--only takes kinds of rows: {', '.join(KINDS)}")
        saved = json.loads(json_path.read_text())
        unscored = sorted(k for k in only & set(SEARCHES) if SEARCHES[k][1] not in saved["settings"]["scores"])
        if unscored:
            raise SystemExit(
                f"the saved run has no {', '.join(unscored)} search: its scores are {saved['settings']['scores']}"
            )
        # The saved run's settings, so that the new rows compare with its others; a new cropper (given on the
        # command line) replaces every row that depends on it, or the rows would mix two croppers.
        changed = {
            key: settings[key]
            for key in CROPPER_SETTINGS
            if getattr(args, key) is not None and settings[key] != saved["settings"][key]
        }
        stale = {r["kind"] for r in saved["rows"] if r["kind"] in CROPPED} - only
        if changed and stale:
            raise SystemExit(f"a new cropper ({changed}) needs its rows measured again: add {', '.join(sorted(stale))}")
        settings = saved["settings"] | changed

    specs = data_specs(settings)
    log(f"data {' + '.join(specs)}")
    dataset = load_benchmark_data(specs)
    selection, selection_specs = load_selection(settings)
    log(f"  {len(dataset.train)} train / {len(dataset.val)} test / {len(selection)} selection images")

    long = settings["long_epochs"]
    log(f"baseline: the crop benchmark's {long}-epoch model")
    baseline_path = RUNS / f"{crop_name}_baseline_{long}ep.keras"
    record, baseline = crop_pipeline.train_baseline(dataset, settings, long, baseline_path, args.reuse)
    log("cropper: the crop benchmark's")
    cropper, _, cropper_record = crop_pipeline.train_cropper_once(
        dataset, settings, RUNS / f"{crop_name}_cropper.keras", args.reuse
    )
    base = {
        "epochs": long,
        "macs": macs_of(baseline),
        "params": _params(baseline),
        "accuracy": evaluate_classifier(baseline, dataset.val),
        "reused": record["reused"],
    }
    result = {
        "command": command,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "load_start": os.getloadavg()[0],
        "settings": settings,
        "data": dataset.spec,
        "selection": selection_specs,
        "train_images": len(dataset.train),
        "test_images": len(dataset.val),
        "selection_images": len(selection),
        "baseline": base,
        "cropper_macs": cropper_record["macs"],
        "cropper_val_iou": cropper_record["val"]["mean_iou"],
        "rows": [],
    }
    if only:
        cropper_now = {key: result[key] for key in ("settings", "cropper_macs", "cropper_val_iou")}
        result = saved | cropper_now | {"rows": [r for r in saved["rows"] if r["kind"] not in only]}
        result["added"] = [*saved.get("added", []), command]
        started -= 60 * saved["minutes"]

    def save():
        result["minutes"] = (time.perf_counter() - started) / 60
        result["goals"] = goals(result)
        write_text(json_path, json.dumps(result, indent=1))

    def done(row):
        result["rows"].append(row)
        save()
        log(
            f"{KINDS[row['kind']]} at {row.get('budget', 1):.0%}: test accuracy {row['accuracy']:.4f}, "
            f"{row['macs']:,} MACs ({row['share']:.1%}); {(time.perf_counter() - started) / 60:.1f} min so far"
        )

    whole, whole_test = views(dataset, selection)
    crops, crops_test = views(dataset, selection, cropper)
    rng = np.random.default_rng(settings["seed"])
    calib = np.asarray(dataset.train.images[np.sort(rng.permutation(len(dataset.train))[: settings["calibration"]])])
    order = removal_order(baseline, block_relevance(baseline, calib))
    crop_macs = cropper_record["macs"]
    own = settings["size"]
    teacher = (
        {"teacher": baseline, "teacher_data": tuning_and_test(dataset, selection)[0]} if settings["distill"] else {}
    )

    oracle, oracle_test = views(dataset, selection, boxes="true")

    def wanted(kind):
        return only is None or kind in only

    for budget in settings["budgets"]:
        for kind, (cropped, score) in SEARCHES.items():
            if score not in settings["scores"] or not wanted(kind):
                continue
            data_at, test_at = (crops, crops_test) if cropped else (whole, whole_test)
            resolutions = settings["crop_resolutions" if cropped else "resolutions"]
            beside = crop_macs if cropped else 0
            row = compound_row(
                kind, baseline, budget, data_at, test_at, settings, base, resolutions, teacher, beside, score
            )
            done(row)
        if wanted("width"):
            done(width_row(baseline, budget, calib, whole, whole_test, settings, base, teacher))
        if wanted("depth"):
            done(depth_row(baseline, budget, order, whole, whole_test, settings, base, teacher))
        if wanted("resolution"):
            done(resolution_row("resolution", baseline, budget, whole, whole_test, settings, base, teacher))
        for kind, data_at, test_at in (("crop_resolution", crops, crops_test), ("oracle_crop", oracle, oracle_test)):
            if wanted(kind):
                done(
                    resolution_row(kind, baseline, budget, data_at, test_at, settings, base, teacher, beside=crop_macs)
                )
    if wanted("control"):
        done(finish("control", 1.0, _copy(baseline), own, whole, whole_test, settings, base, teacher=teacher))

    result["load_end"] = os.getloadavg()[0]
    save()
    report(result, json_path, md_path, plot_path, args.quick)


def report(result, json_path, md_path, plot_path, quick):
    """The plot, the Markdown (also the section of bench/RESULTS.md unless ``quick``) and the goals in the JSON."""
    plot(result, plot_path)
    result["plot"] = os.path.relpath(plot_path, ROOT / "bench")
    result["goals"] = goals(result)
    write_text(json_path, json.dumps(result, indent=1))
    text = markdown(result)
    write_text(md_path, text + "\n")
    if not quick:
        update_section("compound_shrink", text)
    print(text)
    log(f"wrote {json_path.relative_to(ROOT)}, {md_path.relative_to(ROOT)}, {plot_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
