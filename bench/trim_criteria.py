"""Benchmark of the trimming criteria (issues 3 and 15): the default (``taylor``) against the paper's relevance,
l1 and random, on cluttered Fashion-MNIST.

One ResNet-style baseline is trained once and saved under ``bench/runs/``; every run (variant x MACs target x
seed) reloads it, trims it to the target fraction of its MACs with :func:`run_trim` at the stage's
defaults (steps, layer limit, protected stem, batch norms re-estimated, distillation) and fine-tunes it with
the same budget. A variant is a criterion name, ``NAME:nokd`` for the same without distillation,
``NAME:steps1`` for the same in one surgery instead of the stage's steps, ``NAME:roundsK`` for K rounds of
trimming and fine-tuning that share the fine-tune epochs (the same total training), ``NAME:lrX`` for the
same fine-tuned at learning rate X (``taylor:lr5e-4``) instead of ``--fine-tune-lr``, or ``NAME:recon`` /
``NAME:norecon`` for the same with / without the layers that lost input channels refit by least squares
after surgery (the stage's default refits only where no fine-tuning follows), or ``NAME:sens`` for the same
with the budget allocated by measured sensitivity (``allocation="sensitivity"``). The seed
picks the representative images, the fine-tune's shuffling and (for ``random``) the ranking. Also measured
on the same machine in the same process:

* the overhead of collecting activation statistics with the :class:`ActivationStatistics` callback against a
  plain ``model.predict`` (medians over alternating repetitions; whole runs, including the rebuild and re-trace
  of the predict function the callback causes, and the steady per-batch cost);
* the surgery time on ``keras.applications.ResNet50``: ``find_groups`` and ``trim_model(ratio=0.5)``.

Writes ``bench/runs/trim_criteria.json`` (after every run, so a stopped benchmark keeps what it measured),
``bench/runs/trim_criteria.md`` (also its section of ``bench/RESULTS.md``, and printed) and the plot
``bench/trim_criteria.png``. ``--quick`` is a smoke run (1 seed, 1 target, tiny data) that writes
``bench/runs/trim_criteria_quick.*`` instead. Progress, one line per run, goes to stderr.

    .venv/bin/python bench/trim_criteria.py              # about 45 minutes on 2 CPU cores (run_all has the rest)
    .venv/bin/python bench/trim_criteria.py --quick      # about 1-2 minutes
"""

import argparse
import datetime
import json
import os
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfscissor.io import write_text  # noqa: E402
from tfscissor.trim.defaults import FINE_TUNE_LR  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from results import join_datasets, log, machine, plural, update_section  # noqa: E402

RUNS = ROOT / "bench" / "runs"
FASHION = "/usr/share/datasets/fashion-mnist"
# The variants' fixed suffixes (besides roundsK and lrX), and how --criteria and its errors name them all.
SUFFIXES = ("nokd", "steps1", "recon", "norecon", "sens")
VARIANT_FORMS = "NAME, NAME:nokd, NAME:steps1, NAME:roundsK, NAME:lrX, NAME:recon, NAME:norecon or NAME:sens"
CRITERIA = ("taylor", "relevance", "apoz", "l1", "random")
VARIANTS = ("taylor", "relevance", "l1", "random", "taylor:nokd")

# Defaults, sized so that the whole benchmark runs in about 25 minutes on 2 CPU cores (see bench/RESULTS.md).
FULL = {
    "size": 32,
    "n": 5000,
    "data_seeds": 4,
    "min_scale": 0.6,
    "max_scale": 0.95,
    "clutter": 1,
    "source": f"idx:{FASHION}",
    "model": "resnet",
    "widths": "16,32,64",
    "blocks": "1,1,1",
    "epochs": 12,
    "lr": 2e-3,
    "fine_tune_epochs": 2,
    "fine_tune_lr": FINE_TUNE_LR,
    "samples": 512,
    "targets": "0.5",
    "seeds": 3,
    "criteria": ",".join(VARIANTS),
    "overhead_images": 4096,
    "overhead_reps": 5,
    "surgery_size": 224,
    "surgery_reps": 3,
}
QUICK = {
    **FULL,
    "n": 1000,
    "data_seeds": 1,
    "epochs": 3,
    "fine_tune_epochs": 1,
    "samples": 128,
    "targets": "0.5",
    "seeds": 1,
    "overhead_images": 512,
    "overhead_reps": 2,
    "surgery_size": 64,
    "surgery_reps": 1,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, target 0.5, tiny data (~1-2 min)")
    parser.add_argument("--size", type=int, help=f"canvas side in pixels ({FULL['size']})")
    parser.add_argument("--n", type=int, help=f"images per data seed in train + val, 20%% val ({FULL['n']})")
    parser.add_argument(
        "--data-seeds",
        type=int,
        help=f"cluttered specs seed=0..N-1, train and val splits joined ({FULL['data_seeds']})",
    )
    parser.add_argument("--min-scale", type=float, help=f"smallest object side / canvas side ({FULL['min_scale']})")
    parser.add_argument("--max-scale", type=float, help=f"largest object side / canvas side ({FULL['max_scale']})")
    parser.add_argument("--clutter", type=int, help=f"distractors per image ({FULL['clutter']})")
    parser.add_argument(
        "--source", help=f"the cluttered objects: idx:PATH, glyphs or digits ({FULL['source']}, Fashion-MNIST)"
    )
    parser.add_argument("--model", choices=("resnet", "mobilenetv2"), help=f"baseline builder ({FULL['model']})")
    parser.add_argument("--widths", help=f"ResNet widths per stage ({FULL['widths']})")
    parser.add_argument("--blocks", help=f"ResNet basic blocks per stage ({FULL['blocks']})")
    parser.add_argument("--epochs", type=int, help=f"baseline training epochs ({FULL['epochs']})")
    parser.add_argument("--lr", type=float, help=f"baseline learning rate, cosine-decayed ({FULL['lr']})")
    parser.add_argument("--fine-tune-epochs", type=int, help=f"fine-tune epochs per run ({FULL['fine_tune_epochs']})")
    parser.add_argument("--fine-tune-lr", type=float, help=f"fine-tune learning rate ({FULL['fine_tune_lr']})")
    parser.add_argument("--samples", type=int, help=f"representative images for the statistics ({FULL['samples']})")
    parser.add_argument("--targets", help=f"fractions of the baseline's MACs to keep ({FULL['targets']})")
    parser.add_argument("--seeds", type=int, help=f"seeds per criterion and target, 0..N-1 ({FULL['seeds']})")
    parser.add_argument(
        "--criteria",
        help=(f"variants to compare, {VARIANT_FORMS} ({FULL['criteria']})"),
    )
    parser.add_argument("--overhead-images", type=int, help=f"images per predict ({FULL['overhead_images']})")
    parser.add_argument("--overhead-reps", type=int, help=f"repetitions of each predict ({FULL['overhead_reps']})")
    parser.add_argument("--surgery-size", type=int, help=f"ResNet50 input side ({FULL['surgery_size']})")
    parser.add_argument("--surgery-reps", type=int, help=f"ResNet50 surgery repetitions ({FULL['surgery_reps']})")
    parser.add_argument("--baseline", type=Path, help="reuse this trained baseline (.keras) instead of training one")
    parser.add_argument(
        "--name",
        default="trim_criteria",
        help="name of the outputs (bench/runs/NAME.json and .md, bench/NAME.png) and of the RESULTS.md section",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only render the saved run of --name again (Markdown, RESULTS.md, the plot)",
    )
    parser.add_argument("--skip-extras", action="store_true", help="skip the collection overhead and ResNet50 surgery")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    for key in FULL:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    settings["widths"] = [int(w) for w in str(settings["widths"]).split(",")]
    settings["blocks"] = [int(b) for b in str(settings["blocks"]).split(",")]
    settings["targets"] = [float(t) for t in str(settings["targets"]).split(",")]
    settings["criteria"] = [c.strip() for c in str(settings["criteria"]).split(",")]
    return args, settings


def data_specs(settings):
    return [
        f"cluttered:source={settings['source']},size={settings['size']},n={settings['n']},classes=10,seed={seed},"
        f"min_scale={settings['min_scale']},max_scale={settings['max_scale']},clutter={settings['clutter']}"
        for seed in range(settings["data_seeds"])
    ]


def load_benchmark_data(specs):
    """The train and val splits of every spec, joined (see ``join_datasets``). Train items come from
    Fashion-MNIST's train set, val items from its test set, so the splits never share an item."""
    from tfscissor.data import load_data

    return join_datasets([load_data(spec) for spec in specs])


# --- the baseline and the criterion runs ------------------------------------------------------------------


def train_baseline(dataset, settings, path):
    from tfscissor.analysis import profile_model
    from tfscissor.models import build_model
    from tfscissor.models.io import save_model
    from tfscissor.models.training import evaluate_classifier, train_classifier

    shape = {"widths": settings["widths"], "blocks": settings["blocks"]} if settings["model"] == "resnet" else {}
    model = build_model(settings["model"], dataset.image_shape, dataset.num_classes, seed=0, **shape)
    start = time.perf_counter()
    history = train_classifier(
        model,
        dataset,
        epochs=settings["epochs"],
        batch_size=64,
        learning_rate=settings["lr"],
        seed=0,
        callbacks=[EpochLine("baseline")],
    )
    seconds = time.perf_counter() - start
    save_model(model, path)
    profile = profile_model(model)
    return {
        "path": str(path.relative_to(ROOT)),
        "accuracy": evaluate_classifier(model, dataset.val),
        "train_accuracy": history["accuracy"][-1],
        "macs": profile.macs,
        "params": profile.params,
        "train_seconds": seconds,
        "epoch_seconds": seconds / settings["epochs"],
    }


def load_baseline(dataset, path):
    from tfscissor.analysis import profile_model
    from tfscissor.models.io import load_model
    from tfscissor.models.training import check_input, evaluate_classifier

    model = load_model(path)
    check_input(model, dataset.image_shape, dataset.spec)
    profile = profile_model(model)
    return {
        "path": str(path),
        "accuracy": evaluate_classifier(model, dataset.val),
        "macs": profile.macs,
        "params": profile.params,
    }


class EpochLine(keras.callbacks.Callback):
    """One line per epoch (seconds, loss, accuracies) on stderr."""

    def __init__(self, desc):
        super().__init__()
        self.desc = desc

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        shown = ", ".join(f"{k} {float(v):.3f}" for k, v in (logs or {}).items() if k != "learning_rate")
        seconds = time.perf_counter() - self.start
        log(f"  {self.desc} epoch {epoch + 1}/{self.params['epochs']}: {seconds:.1f} s, {shown}")


def trim_run(baseline_path, dataset, settings, variant, target, seed):
    from tfscissor.models.io import load_model
    from tfscissor.trim.stage import run_trim

    criterion, _, suffix = variant.partition(":")
    rounds = int(suffix[len("rounds") :]) if re.fullmatch(r"rounds[1-9]", suffix) else 1
    variant_lr = _variant_lr(variant)
    if suffix not in ("", *SUFFIXES) and rounds == 1 and variant_lr is None:
        raise SystemExit(f"unknown variant {variant!r}: {VARIANT_FORMS}")
    if variant_lr is not None and variant_lr <= 0:
        raise SystemExit(f"{variant}: the learning rate must be above 0")
    if settings["fine_tune_epochs"] % rounds:
        raise SystemExit(f"{variant}: {rounds} rounds cannot share {settings['fine_tune_epochs']} fine-tune epochs")
    one_step = {"steps": 1} if suffix == "steps1" else {}
    model = load_model(baseline_path)
    start = time.perf_counter()
    result = run_trim(
        model,
        dataset,
        samples=settings["samples"],
        rounds=rounds,
        fine_tune_epochs=settings["fine_tune_epochs"] // rounds,
        learning_rate=_fine_tune_rate(variant, settings),
        seed=seed,
        criterion=criterion,
        distill=suffix != "nokd",
        reconstruct={"recon": True, "norecon": False}.get(suffix),
        allocation="sensitivity" if suffix == "sens" else "global",
        target_macs=target,
        **one_step,
    )
    seconds = time.perf_counter() - start
    report = result.report
    return {
        "criterion": variant,
        "target": target,
        "seed": seed,
        "macs": report["macs_after"] / report["macs_before"],
        "params": report["params_after"] / report["params_before"],
        "macs_after": report["macs_after"],
        "params_after": report["params_after"],
        "accuracy_before": report["accuracy_before"],
        "accuracy_trimmed": report["accuracy_trimmed"],
        "accuracy_after": report["accuracy_after"],
        "seconds": seconds,
        "channels": {layer["layer"]: [layer["before"], layer["after"]] for layer in report["layers"]},
    }


# --- collection overhead ------------------------------------------------------------------------------------


class Stamps(keras.callbacks.Callback):
    """Times of a predict: when its callbacks began, and when each batch ended (perf_counter seconds)."""

    def on_predict_begin(self, logs=None):
        self.begin, self.batches = time.perf_counter(), []

    def on_predict_batch_end(self, batch, logs=None):
        self.batches.append(time.perf_counter())


def timed_predict(model, images, callbacks=()):
    """Run one predict; return its phases in seconds. The stamps callback runs after ``callbacks``, so
    ``setup`` holds their ``on_predict_begin`` (the statistics callback wraps layers and rebuilds the step)."""
    stamps = Stamps()
    start = time.perf_counter()
    model.predict(images, batch_size=64, verbose=0, callbacks=[*callbacks, stamps])
    end = time.perf_counter()
    intervals = np.diff(stamps.batches)
    return {
        "total": end - start,
        "setup": stamps.begin - start,
        "first_batch": stamps.batches[0] - stamps.begin,  # includes tracing the step function
        "steady_batch": float(np.median(intervals)) if len(intervals) else float("nan"),
        "finish": end - stamps.batches[-1],
    }


def measure_overhead(baseline_path, dataset, settings):
    """Plain predict against predict with an ActivationStatistics callback on every tap of the groups.

    Two copies of the baseline: the plain one stays traced, as in real use; the observed one pays what
    collection costs (wrapping, rebuilding and re-tracing the step). Repetitions alternate (plain, observed,
    then plain again on the observed copy, which must re-trace after the callback restored its step).
    """
    from tfscissor.models.io import load_model
    from tfscissor.trim import ActivationStatistics, find_groups

    plain_model, observed_model = load_model(baseline_path), load_model(baseline_path)
    taps = sorted({tap.layer for group in find_groups(observed_model) for tap in group.taps})
    rng = np.random.default_rng(0)
    pool = np.concatenate([dataset.train.images, dataset.val.images])
    images = pool[rng.choice(len(pool), settings["overhead_images"], replace=len(pool) < settings["overhead_images"])]
    images = images.astype(np.float32)

    def observed():
        recorder = ActivationStatistics(taps, modes=("predict",))
        phases = timed_predict(observed_model, images, [recorder])
        positions = {name: stats.count for name, stats in recorder.statistics.items()}
        if sorted(positions) != taps or min(positions.values()) == 0:
            raise RuntimeError(f"the statistics callback recorded {positions}, expected counts for {taps}")
        return phases

    # Warm up: trace both copies, run the callback once.
    timed_predict(plain_model, images[:64])
    timed_predict(observed_model, images[:64])
    observed()
    runs = {"plain": [], "observed": [], "plain_after_observed": []}
    for rep in range(settings["overhead_reps"]):
        order = ("plain", "observed") if rep % 2 == 0 else ("observed", "plain")
        for kind in order:
            if kind == "plain":
                runs["plain"].append(timed_predict(plain_model, images))
            else:
                runs["observed"].append(observed())
                runs["plain_after_observed"].append(timed_predict(observed_model, images))
    medians = {
        kind: {phase: statistics.median(run[phase] for run in values) for phase in values[0]}
        for kind, values in runs.items()
    }
    batches = -(-len(images) // 64)
    plain, seen = medians["plain"], medians["observed"]
    return {
        "images": len(images),
        "batches": batches,
        "taps": len(taps),
        "reps": settings["overhead_reps"],
        "medians": medians,
        "runs": runs,
        "total_ratio": seen["total"] / plain["total"],
        "steady_ratio": seen["steady_batch"] / plain["steady_batch"],
        # What a run costs beyond its batches at the steady rate: wrapping, rebuilding, tracing, restoring.
        "one_off_plain": plain["total"] - batches * plain["steady_batch"],
        "one_off_observed": seen["total"] - batches * seen["steady_batch"],
        "retrace_after": medians["plain_after_observed"]["total"] - plain["total"],
    }


# --- ResNet50 surgery ---------------------------------------------------------------------------------------


def measure_surgery(settings):
    from tfscissor.analysis import profile_model
    from tfscissor.trim import collect_statistics, find_groups, trim_model

    side = settings["surgery_size"]
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = keras.applications.ResNet50(weights=None, input_shape=(side, side, 3))
    build = time.perf_counter() - start
    images = np.random.default_rng(0).uniform(0, 255, (4, side, side, 3)).astype(np.float32)
    start = time.perf_counter()
    groups = find_groups(model)
    first_groups = time.perf_counter() - start
    taps = sorted({tap.layer for group in groups for tap in group.taps})
    start = time.perf_counter()
    stats = collect_statistics(model, images, taps, batch_size=4)
    collect = time.perf_counter() - start
    group_times, trim_times, budget_times, result = [], [], [], None
    for _ in range(settings["surgery_reps"]):
        start = time.perf_counter()
        find_groups(model)
        group_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = trim_model(model, stats, ratio=0.5)
        trim_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        budget = trim_model(model, stats, target_macs=0.5)
        budget_times.append(time.perf_counter() - start)
    before, after = profile_model(model), profile_model(result.model)
    trimmed_output = result.model.predict(images[:1], verbose=0)
    if trimmed_output.shape != (1, 1000) or not np.all(np.isfinite(trimmed_output)):
        raise RuntimeError(f"the trimmed ResNet50 gives {trimmed_output.shape} outputs")
    return {
        "input": [side, side, 3],
        "layers": len(model.layers),
        "groups": len(groups),
        "taps": len(taps),
        "reps": settings["surgery_reps"],
        "build_seconds": build,
        "first_find_groups_seconds": first_groups,
        "collect_seconds_4_images": collect,
        "find_groups_seconds": statistics.median(group_times),
        "trim_model_seconds": statistics.median(trim_times),
        "find_groups_all": group_times,
        "trim_model_all": trim_times,
        "trim_model_budget_seconds": statistics.median(budget_times),
        "trim_model_budget_all": budget_times,
        "budget_macs_after": profile_model(budget.model).macs,
        "macs_before": before.macs,
        "macs_after": after.macs,
        "params_before": before.params,
        "params_after": after.params,
    }


# --- report -------------------------------------------------------------------------------------------------


def _variant_lr(variant):
    """The fine-tune learning rate a ``NAME:lrX`` variant names (X a decimal number, ``5e-4`` or ``0.002``),
    else None."""
    match = re.fullmatch(r"lr((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e-?[0-9]+)?)", variant.partition(":")[2])
    return float(match.group(1)) if match else None


def _fine_tune_rate(variant, settings):
    """The learning rate ``variant`` fine-tunes at: the one it names, else the run's ``--fine-tune-lr``."""
    rate = _variant_lr(variant)
    return settings["fine_tune_lr"] if rate is None else rate


def _sweeps_rate(settings):
    """Whether some variant of the run names its own fine-tune rate."""
    return any(_variant_lr(v) is not None for v in settings["criteria"])


def _order(variant):
    """Table order: the usual variants first, then the others by criterion and learning rate."""
    if variant in VARIANTS:
        return (VARIANTS.index(variant), 0.0)
    return (len(VARIANTS) + CRITERIA.index(variant.partition(":")[0]), _variant_lr(variant) or 0.0)


def summarise(runs, baseline_accuracy):
    """Per (variant, target): means and ranges over the seeds."""
    rows = []
    keys = sorted({(r["criterion"], r["target"]) for r in runs}, key=lambda k: (-k[1], _order(k[0])))
    for criterion, target in keys:
        group = [r for r in runs if r["criterion"] == criterion and r["target"] == target]
        after = [r["accuracy_after"] for r in group]
        trimmed = [r["accuracy_trimmed"] for r in group]
        rows.append(
            {
                "criterion": criterion,
                "target": target,
                "seeds": len(group),
                "macs": float(np.mean([r["macs"] for r in group])),
                "params": float(np.mean([r["params"] for r in group])),
                "trimmed_mean": float(np.mean(trimmed)),
                "trimmed_min": min(trimmed),
                "trimmed_max": max(trimmed),
                "after_mean": float(np.mean(after)),
                "after_min": min(after),
                "after_max": max(after),
                "delta_points": 100 * (float(np.mean(after)) - baseline_accuracy),
                "seconds": float(np.mean([r["seconds"] for r in group])),
            }
        )
    return rows


# Accuracies are counts over the val split, so two means of them can differ by exactly a goal's margin and still
# compare a hair under it in floating point (a mean of 0.73925 is stored as 0.7392500000000001). In points.
FLOAT_NOISE = 1e-6


def goal_lines(rows, baseline_accuracy, default="taylor", tuned=True):
    """Issue 15's goals for the default criterion: before fine-tuning at 90% of the MACs, at least 90% of the
    baseline's accuracy; at 50%, when the runs fine-tuned (``tuned``), within 1 point of the baseline and at
    least 1 point ahead of l1 and random (mean of the seeds, and outside their ranges)."""
    lines = []
    at = {(row["criterion"], row["target"]): row for row in rows}
    first = at.get((default, 0.9))
    if first:
        kept = first["trimmed_mean"] / baseline_accuracy
        lines.append(
            f"- Goal, {default} at 90% MACs before fine-tuning keeps >= 90% of the baseline's accuracy: "
            f"**{'met' if kept >= 0.9 else 'not met'}** ({kept:.1%}, worst seed "
            f"{first['trimmed_min'] / baseline_accuracy:.1%})"
        )
    half = at.get((default, 0.5))
    if half and tuned:
        within = 100 * (half["after_mean"] - baseline_accuracy) >= -1 - FLOAT_NOISE
        lines.append(
            f"- Goal, {default} at 50% MACs within 1 point of the baseline after fine-tuning: "
            f"**{'met' if within else 'not met'}** ({half['delta_points']:+.2f} points, mean of {half['seeds']} seeds)"
        )
        for other in ("l1", "random", "relevance"):
            rival = at.get((other, 0.5))
            if rival:
                gap = 100 * (half["after_mean"] - rival["after_mean"])
                clear = half["after_min"] > rival["after_max"]
                ahead = gap >= 1 - FLOAT_NOISE and clear
                lines.append(
                    f"- Goal, {default} at 50% MACs at least 1 point ahead of {other}: "
                    f"**{'met' if ahead else 'not met'}** ({gap:+.2f} points; the seed ranges "
                    f"{'do not overlap' if clear else 'overlap'})"
                )
    return lines


def fmt_range(mean, low, high):
    return f"{mean:.4f} [{low:.4f}, {high:.4f}]"


def markdown(result):
    s, base, rows = result["settings"], result["baseline"], result["summary"]
    command = result["command"]
    specs = len(result["data"])
    joined = f"the train and val splits of {specs} cluttered specs joined, " if specs > 1 else ""
    more = f" and the same with seed=1..{specs - 1}" if specs > 1 else ""
    lines = [
        f"## Trimming criteria (issues 3 and 15): the default (taylor) vs relevance, l1 and random, `{s['model']}` "
        f"on cluttered `{s['source'].replace(FASHION, 'fashion-mnist')}`, fine-tuned "
        f"{plural(s['fine_tune_epochs'], 'epoch')} at lr {s['fine_tune_lr']:g}"
        + (" (`C:lrX` at X)" if _sweeps_rate(s) else ""),
        "",
        f"- Command: `{command}` (whole run {result['minutes']:.1f} min)",
        f"- Machine: {result['machine']}; load average {result['load_start']:.2f} at the start, "
        f"{result.get('load_end', float('nan')):.2f} at the end (other work on the machine slows the timings, "
        "not the accuracies)",
        f"- Date: {result['date']}",
        f"- Data: {joined}`{result['data'][0]}`{more}: "
        f"{result['train_images']} train / {result['val_images']} val images of {s['size']}x{s['size']}x3, "
        f"at most {48 * len(result['data'])} distinct objects per class and split (the generator banks at most 48 "
        "per spec); val objects are never train objects",
        f"- Baseline: `{s['model']}`"
        + (f" widths {s['widths']}, blocks {s['blocks']}" if s["model"] == "resnet" else " (the builder's defaults)")
        + f", {base['macs']:,} MACs, "
        f"{base['params']:,} params; "
        + (
            f"{s['epochs']} epochs at lr {s['lr']} (cosine), batch 64, seed 0: val accuracy **{base['accuracy']:.4f}** "
            f"(train {base['train_accuracy']:.4f}), {base['epoch_seconds']:.1f} s per epoch"
            if "train_accuracy" in base
            else f"reused from `{base['path']}` (`--baseline`, trained by an earlier run of this script with the "
            f"defaults: {s['epochs']} epochs at lr {s['lr']}, cosine, batch 64, seed 0): val accuracy "
            f"**{base['accuracy']:.4f}**"
        ),
        f"- Every run: the saved baseline, `run_trim(samples={s['samples']}, target_macs=T, "
        f"criterion=C, fine_tune_epochs={s['fine_tune_epochs']}, learning_rate={s['fine_tune_lr']}, seed=S)`, "
        f"seeds {list(range(s['seeds']))} (representative images, fine-tune shuffling, and `random`'s ranking); "
        "other options at the stage's defaults (5 surgery steps, at most 75% of a layer, stem protected, batch "
        "norms re-estimated after each step, the layers that lost input channels refit by least squares (and "
        "the batch norms given back the baseline's statistics) where no fine-tuning follows, distillation from "
        "the baseline; `C:nokd` is C without "
        "distillation, `C:steps1` C in one surgery, `C:roundsK` C in K rounds of trimming and fine-tuning that share "
        "the fine-tune epochs, its 'trimmed' accuracy after the first round's surgery, `C:lrX` C fine-tuned at "
        "learning rate X, `C:recon` / `C:norecon` C with / without the layers that lost input channels refit by "
        "least squares after surgery, which the stage does by default only without fine-tuning, `C:sens` C with "
        "the budget spent where the loss measured on the representative images grows least). For the budget, "
        "loss-scored channels (taylor) are ranked per MAC they free; the heuristic scores (per-layer normalised) "
        "rank as they are",
        "- Accuracy: on the val split, before fine-tuning (trimmed) and after; mean [min, max] over the seeds. "
        f"With {result['val_images']} val images one image is {100 / result['val_images']:.3f} points.",
        "",
        "| variant | target MACs | MACs kept | params kept | accuracy trimmed | accuracy fine-tuned "
        "| vs baseline (points) | s per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['criterion']} | {row['target']:.0%} | {row['macs']:.1%} | {row['params']:.1%} | "
            f"{fmt_range(row['trimmed_mean'], row['trimmed_min'], row['trimmed_max'])} | "
            f"{fmt_range(row['after_mean'], row['after_min'], row['after_max'])} | {row['delta_points']:+.2f} | "
            f"{row['seconds']:.0f} |"
        )
    lines += ["", *goal_lines(rows, base["accuracy"], tuned=s["fine_tune_epochs"] > 0), ""]
    if result.get("plot"):
        lines += [f"![accuracy against MACs]({result['plot']})", ""]
    overhead = result.get("overhead")
    if overhead:
        m = overhead["medians"]
        lines += [
            "### Collection overhead: `ActivationStatistics` in predict vs plain predict",
            "",
            f"The baseline, {overhead['images']} images in {overhead['batches']} batches of 64, the callback on "
            f"all {overhead['taps']} tap layers of the groups; medians of {overhead['reps']} alternating "
            "repetitions after warm-up. The callback wraps the tapped layers and rebuilds the predict step at "
            "the start of each run (re-traced on its first batch) and restores them at the end, so the next "
            "plain predict on that model traces once more.",
            "",
            "| | plain predict | with the callback | ratio |",
            "|---|---|---|---|",
            f"| whole run, s | {m['plain']['total']:.3f} | {m['observed']['total']:.3f} | "
            f"{overhead['total_ratio']:.2f}x |",
            f"| steady cost per batch, ms | {1000 * m['plain']['steady_batch']:.2f} | "
            f"{1000 * m['observed']['steady_batch']:.2f} | {overhead['steady_ratio']:.2f}x |",
            f"| one-off cost per run (total - batches x steady), s | {overhead['one_off_plain']:.3f} | "
            f"{overhead['one_off_observed']:.3f} | |",
            "| of which set-up before the first batch (callback: wrap layers, rebuild step), s | "
            f"{m['plain']['setup']:.3f} | {m['observed']['setup']:.3f} | |",
            f"| of which first batch (trace + run), s | {m['plain']['first_batch']:.3f} | "
            f"{m['observed']['first_batch']:.3f} | |",
            f"| of which end of run (callback: read sums, restore layers, rebuild step), s | "
            f"{m['plain']['finish']:.3f} | {m['observed']['finish']:.3f} | |",
            "",
            f"The next plain predict on the observed model took {m['plain_after_observed']['total']:.3f} s "
            f"({overhead['retrace_after']:+.3f} s against a traced one): the re-trace the collection leaves behind.",
            "",
        ]
    surgery = result.get("surgery")
    if surgery:
        lines += [
            "### Surgery time: keras.applications ResNet50",
            "",
            f"`ResNet50(weights=None, input_shape={tuple(surgery['input'])})`: {surgery['layers']} layers, "
            f"{surgery['groups']} channel groups, {surgery['taps']} taps; statistics from 4 random images "
            f"({surgery['collect_seconds_4_images']:.1f} s to collect, tracing included). "
            f"Median of {surgery['reps']}:",
            "",
            "| step | seconds |",
            "|---|---|",
            f"| `find_groups(model)` | {surgery['find_groups_seconds']:.2f} |",
            f"| `trim_model(model, stats, ratio=0.5)` (scoring, selection, rebuild with sliced weights) | "
            f"{surgery['trim_model_seconds']:.2f} |",
            f"| `trim_model(model, stats, target_macs=0.5)` (the same, selection by the MACs budget, checked by "
            f"exact rebuilds) | {surgery['trim_model_budget_seconds']:.2f} |",
            "",
            f"MACs {surgery['macs_before']:,} -> {surgery['macs_after']:,} "
            f"({surgery['macs_after'] / surgery['macs_before']:.1%}), params {surgery['params_before']:,} -> "
            f"{surgery['params_after']:,} ({surgery['params_after'] / surgery['params_before']:.1%}) with "
            f"ratio=0.5; MACs {surgery['budget_macs_after'] / surgery['macs_before']:.1%} of the original with "
            "target_macs=0.5.",
            "",
        ]
    return "\n".join(lines)


def _series(result, by_rate):
    """(label, summary rows) to draw: a line per variant across the budgets, or with ``by_rate`` a line per
    criterion across its ``NAME:lrX`` variants and itself (each row given its ``rate``)."""
    settings = result["settings"]
    criteria = settings["criteria"]
    if not by_rate:
        for variant in criteria:
            rows = sorted((r for r in result["summary"] if r["criterion"] == variant), key=lambda r: r["macs"])
            if rows:
                yield variant, rows
        return
    for criterion in dict.fromkeys(v.partition(":")[0] for v in criteria):
        rows = [
            {**r, "rate": _fine_tune_rate(r["criterion"], settings)}
            for r in result["summary"]
            if r["criterion"] == criterion or r["criterion"].startswith(f"{criterion}:lr")
        ]
        if rows:
            yield criterion, sorted(rows, key=lambda r: r["rate"])


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    base = result["baseline"]["accuracy"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    settings = result["settings"]
    # A sweep of the fine-tune's rate at one budget reads better against the rate than against the MACs.
    by_rate = len(settings["targets"]) == 1 and _sweeps_rate(settings)
    for criterion, rows in _series(result, by_rate):
        x = [r["rate"] if by_rate else r["macs"] for r in rows]
        y = [100 * r["after_mean"] for r in rows]
        err = [
            [100 * (r["after_mean"] - r["after_min"]) for r in rows],
            [100 * (r["after_max"] - r["after_mean"]) for r in rows],
        ]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=criterion)
    ax.axhline(100 * base, color="black", linewidth=1, label=f"baseline {100 * base:.2f}")
    ax.axhline(100 * base - 1, color="black", linewidth=1, linestyle=":", label="baseline - 1 point")
    if by_rate:
        rates = sorted({_fine_tune_rate(v, settings) for v in settings["criteria"]})
        ax.set_xscale("log")
        ax.set_xticks(rates, [f"{rate:g}" for rate in rates])
        ax.minorticks_off()
        ax.set_xlabel(
            f"fine-tune learning rate (Adam, cosine to 0; the unmarked rows' {settings['fine_tune_lr']:g}), "
            f"at {settings['targets'][0]:.0%} of the MACs"
        )
    else:
        ax.plot([1.0], [100 * base], marker="*", markersize=12, color="black", linestyle="none")
        ax.set_xlim(0, 1.05)
        ax.set_xticks(sorted({0.0, *settings["targets"], 1.0}))
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("MACs kept (of the baseline's)")
    ax.set_ylabel("val accuracy after fine-tuning (%)")
    seeds = settings["seeds"]
    where = f"{settings.get('model', 'resnet')}, cluttered {settings.get('source', FASHION).replace(FASHION, 'Fashion-MNIST')}"
    ax.set_title(f"Trimming criteria, {where} (mean, min-max over {seeds} seed{'s' * (seeds > 1)})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args, settings = parse_args(argv)
    name = f"{args.name}_quick" if args.quick else args.name
    json_path, md_path = RUNS / f"{name}.json", RUNS / f"{name}.md"
    plot_path = RUNS / f"{name}.png" if args.quick else ROOT / "bench" / f"{name}.png"
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.report:
        saved = json.loads(json_path.read_text())
        # Runs saved before --model and --source existed used these.
        saved["settings"] = {"model": "resnet", "source": FASHION, **saved["settings"]}
        plot(saved, plot_path)
        return report(saved, md_path, name, args.quick)
    started = time.perf_counter()
    command = " ".join(["python bench/trim_criteria.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))]).strip()

    specs = data_specs(settings)
    log(f"data {' + '.join(specs)}")
    start = time.perf_counter()
    dataset = load_benchmark_data(specs)
    log(
        f"  {len(dataset.train)} train / {len(dataset.val)} val images of {dataset.image_shape} in "
        f"{time.perf_counter() - start:.1f} s"
    )
    result = {
        "command": command,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "load_start": os.getloadavg()[0],
        "settings": settings,
        "data": specs,
        "train_images": len(dataset.train),
        "val_images": len(dataset.val),
        "runs": [],
    }

    def save():
        result["minutes"] = (time.perf_counter() - started) / 60
        result["summary"] = summarise(result["runs"], result["baseline"]["accuracy"])
        write_text(json_path, json.dumps(result, indent=1))

    if args.baseline:
        baseline_path = args.baseline
        result["baseline"] = load_baseline(dataset, baseline_path)
        log(f"baseline {baseline_path}: val accuracy {result['baseline']['accuracy']:.4f}")
    else:
        baseline_path = RUNS / f"{name}_baseline.keras"
        shape = f" widths {settings['widths']} blocks {settings['blocks']}" if settings["model"] == "resnet" else ""
        log(f"baseline: {settings['model']}{shape}, {settings['epochs']} epochs")
        result["baseline"] = train_baseline(dataset, settings, baseline_path)
        b = result["baseline"]
        log(
            f"baseline: val accuracy {b['accuracy']:.4f} (train {b['train_accuracy']:.4f}), {b['macs']:,} MACs, "
            f"{b['train_seconds']:.0f} s, saved to {b['path']}"
        )
    save()

    plan = [
        (seed, target, criterion)
        for seed in range(settings["seeds"])
        for target in settings["targets"]
        for criterion in settings["criteria"]
    ]
    for index, (seed, target, criterion) in enumerate(plan, start=1):
        run = trim_run(baseline_path, dataset, settings, criterion, target, seed)
        result["runs"].append(run)
        save()
        log(
            f"[{index}/{len(plan)}] {criterion:9s} target {target:.0%} seed {seed}: MACs {run['macs']:.1%}, "
            f"accuracy {run['accuracy_trimmed']:.4f} trimmed -> {run['accuracy_after']:.4f} fine-tuned "
            f"(baseline {run['accuracy_before']:.4f}), {run['seconds']:.1f} s; "
            f"{(time.perf_counter() - started) / 60:.1f} min so far"
        )

    if not args.skip_extras:
        log("collection overhead")
        result["overhead"] = measure_overhead(baseline_path, dataset, settings)
        o = result["overhead"]
        log(f"  whole run {o['total_ratio']:.2f}x plain, steady per batch {o['steady_ratio']:.2f}x plain")
        save()

        log(f"ResNet50 surgery at {settings['surgery_size']} px")
        result["surgery"] = measure_surgery(settings)
        g = result["surgery"]
        log(f"  find_groups {g['find_groups_seconds']:.2f} s, trim_model(ratio=0.5) {g['trim_model_seconds']:.2f} s")

    result["load_end"] = os.getloadavg()[0]
    plot(result, plot_path)
    result["plot"] = os.path.relpath(plot_path, ROOT / "bench")
    save()
    report(result, md_path, name, args.quick)
    log(f"wrote {json_path.relative_to(ROOT)}, {plot_path.relative_to(ROOT)}")


def report(result, md_path, name, quick):
    """The Markdown of a run (also its section of bench/RESULTS.md unless ``quick``), printed."""
    text = markdown(result)
    write_text(md_path, text + "\n")
    if not quick:
        update_section(name, text)
    print(text)


if __name__ == "__main__":
    main()
