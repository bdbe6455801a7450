"""Benchmark of Smart Scissor's crop-then-classify on cluttered Fashion-MNIST: accuracy against total MACs.

On 96x96 cluttered canvases, the same ResNet-style classifier (blocks 2,2,2, widths 16,32,64, stride-2 stem) is
trained, with the same budget (epochs, learning rate, batch, seed) per row, on

* the whole image at 96 px: the baseline, with that budget and with twice as many epochs (to show how far the
  baseline is from convergence: compare crops with the better of the two);
* (a) the whole image down-scaled to R px (the crop policy's resize filter with the whole image as window);
* (b) crops at R px from the learned cropper: ``fitted_cropper`` sized as ``crop train`` sizes it, against the
  classifier at the resolution where the goals are judged (at most 10% of its MACs, half its int8 bytes), trained once on
  the true boxes; the classifier is trained with ``train_on_crops`` on its predicted boxes mixed half and half
  with jittered true boxes, and evaluated as a :class:`TwoStage` pipeline on the cropper's val boxes;
* (c) the oracle: crops at R px from the true boxes, trained on jittered true boxes and evaluated at the true
  val boxes (the ceiling a perfect cropper gives).

Total MACs include the cropper for (b) and also for (c) (it stands for a perfect cropper of the same cost), so
at each R the learned and oracle points sit at the same MACs. Each crop row is also evaluated with the other
row's boxes (the learned classifier on true-box crops, the oracle classifier on the cropper's boxes). The goals
are checked at the largest crop resolution whose total MACs are at most 25% of the baseline's. The trained
cropper and baselines are cached under ``bench/runs/`` and, with ``--reuse``, loaded instead of retrained when
they were trained with the same settings.

Writes ``bench/runs/crop_pipeline.json`` (after every row, so a stopped benchmark keeps what it measured),
``bench/runs/crop_pipeline.md`` (also its section of ``bench/RESULTS.md``, and printed) and the plot
``bench/crop_pipeline.png``. ``--quick`` is a smoke run (tiny data, 1 epoch, 2 resolutions) that writes
``bench/runs/crop_pipeline_quick.*`` and leaves ``bench/RESULTS.md`` alone. Progress goes to stderr.
The full run took 29.1 minutes on 2 AMD EPYC cores shared with a test run (load average 1.3-1.8): the 96-px
baselines take about 35% of it, the cropper (then 15 epochs) under 3 minutes; at the library's 45 epochs it
takes about 6.

    .venv/bin/python bench/crop_pipeline.py              # about 35 minutes on 2 CPU cores
    .venv/bin/python bench/crop_pipeline.py --quick      # about 2 minutes
"""

import argparse
import datetime
import itertools
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfscissor.crop.training import CROPPER_EPOCHS  # noqa: E402
from tfscissor.io import write_text  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from results import join_datasets, log, machine, plural, update_section  # noqa: E402

RUNS = ROOT / "bench" / "runs"
FASHION = "/usr/share/datasets/fashion-mnist"
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
ARCH = {"blocks": (2, 2, 2), "widths": (16, 32, 64), "stem_stride": 2}
KINDS = {
    "baseline": "baseline: whole image",
    "downscale": "(a) whole image down-scaled",
    "learned": "(b) learned cropper + crop",
    "oracle": "(c) oracle crop (true boxes)",
}
BUDGET = 0.25  # the goals are checked at this share of the baseline's MACs, cropper included

# Defaults, sized so that the whole benchmark runs in about 35 minutes on 2 CPU cores (see the docstring).
FULL = {
    "size": 96,
    "n": 2500,
    "val": 0.3,
    "data_seed": 0,
    "data_seeds": 4,
    "epochs": 5,
    "long_epochs": 10,
    "lr": 2e-3,
    "cropper_epochs": CROPPER_EPOCHS,  # the library's default, as `crop train` trains it
    "cropper_lr": 5e-3,
    "downscale": "32,40,44,48,64",
    "crops": "32,40,48,64",
    "mix": 0.5,
    "distill": 1,
    "seed": 0,
    "monitor": 1000,
}
QUICK = {
    **FULL,
    "n": 600,
    "data_seeds": 1,
    "val": 0.2,
    "epochs": 1,
    "long_epochs": 2,
    "cropper_epochs": 2,
    "downscale": "32,48",
    "crops": "32,40",
    "monitor": 0,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, 1 epoch, 2 resolutions (~2 min)")
    parser.add_argument("--size", type=int, help=f"canvas side in pixels ({FULL['size']})")
    parser.add_argument("--n", type=int, help=f"images in train + val per data seed ({FULL['n']})")
    parser.add_argument("--val", type=float, help=f"val fraction of n ({FULL['val']})")
    parser.add_argument("--data-seed", type=int, help=f"seed of the first cluttered spec ({FULL['data_seed']})")
    parser.add_argument(
        "--data-seeds", type=int, help=f"cluttered specs of consecutive seeds, joined ({FULL['data_seeds']})"
    )
    parser.add_argument("--epochs", type=int, help=f"epochs of every row ({FULL['epochs']})")
    parser.add_argument("--long-epochs", type=int, help=f"epochs of the longer baseline ({FULL['long_epochs']})")
    parser.add_argument("--lr", type=float, help=f"classifier learning rate, cosine-decayed ({FULL['lr']})")
    parser.add_argument("--cropper-epochs", type=int, help=f"cropper training epochs ({FULL['cropper_epochs']})")
    parser.add_argument("--cropper-lr", type=float, help=f"cropper learning rate ({FULL['cropper_lr']})")
    parser.add_argument("--downscale", help=f"resolutions of the down-scaling rows ({FULL['downscale']})")
    parser.add_argument("--crops", help=f"resolutions of the learned and oracle crop rows ({FULL['crops']})")
    parser.add_argument("--mix", type=float, help=f"share of the cropper's boxes in crop training ({FULL['mix']})")
    parser.add_argument(
        "--distill",
        type=int,
        choices=(0, 1),
        help=f"1: the learned crop rows learn from the same-budget whole-image baseline too, as `crop finetune` "
        f"does by default ({FULL['distill']})",
    )
    parser.add_argument("--seed", type=int, help=f"seed of every model's weights and training ({FULL['seed']})")
    parser.add_argument(
        "--monitor",
        type=int,
        help=f"val images scored after each epoch for the progress lines, 0 for all ({FULL['monitor']}); "
        "the reported accuracies always use the whole val split",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="load the cached cropper and baselines when trained with these settings"
    )
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    for key in FULL:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return args, resolution_lists(settings)


def resolution_lists(settings):
    """``settings`` with its comma-separated resolutions (``downscale``, ``crops``) as sorted lists of ints."""
    return {
        **settings,
        **{key: sorted({int(r) for r in str(settings[key]).split(",")}) for key in ("downscale", "crops")},
    }


# --- data ------------------------------------------------------------------------------------------------


def data_specs(settings):
    """One spec per data seed: joined, they hold more distinct objects than one large spec (``join_datasets``)."""
    first = settings["data_seed"]
    return [
        f"cluttered:size={settings['size']},n={settings['n']},val={settings['val']},classes=10,"
        f"source=idx:{FASHION},seed={seed}"
        for seed in range(first, first + settings["data_seeds"])
    ]


def load_benchmark_data(specs):
    from tfscissor.data import load_data

    missing = [f for f in FASHION_FILES if not (Path(FASHION) / f).is_file()]
    if missing:
        raise SystemExit(
            f"crop_pipeline needs Fashion-MNIST in {FASHION} (missing {', '.join(missing)}): install Debian's "
            "dataset-fashion-mnist package (`sudo make system-deps`, or `apt-get install dataset-fashion-mnist`)"
        )
    dataset = join_datasets([load_data(spec) for spec in specs])
    if not dataset.has_boxes:
        raise SystemExit(f"{specs[0]} gave no boxes: crop_pipeline needs a data set with object boxes")
    return dataset


def downscaled(dataset, resolution):
    """The whole images resized to ``resolution`` with the crop policy's filter (the whole image as window)."""
    from tfscissor.data.dataset import Dataset, Split
    from tfscissor.deploy.crop_policy import crop_and_resize

    def shrink(split):
        height, width = split.images.shape[1:3]
        windows = np.tile([0, 0, width, height], (len(split), 1))
        return Split(crop_and_resize(split.images, windows, resolution), split.labels)

    return Dataset(dataset.spec, dataset.class_names, shrink(dataset.train), shrink(dataset.val))


def monitored(dataset, count):
    """``dataset`` with its val split cut to the first ``count`` images (all with 0): scored after each epoch
    for the progress lines only."""
    from tfscissor.data.dataset import Dataset, Split

    if not count or count >= len(dataset.val):
        return dataset
    val = dataset.val
    boxes = None if val.boxes is None else val.boxes[:count]
    return Dataset(
        dataset.spec, dataset.class_names, dataset.train, Split(val.images[:count], val.labels[:count], boxes)
    )


# --- models ----------------------------------------------------------------------------------------------


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


def classifier(resolution, settings):
    from tfscissor.models import build_model

    return build_model("resnet", (resolution, resolution, 3), 10, seed=settings["seed"], **ARCH)


def cached(path, key, reuse, train):
    """Load the model at ``path`` and its record when ``reuse`` and it was trained with ``key``; otherwise
    ``train()`` -> (model, record), save both and return them. The record gains ``reused``."""
    from tfscissor.models.io import load_model, save_model

    meta = path.with_suffix(".json")
    if reuse and path.is_file() and meta.is_file():
        stored = json.loads(meta.read_text())
        if stored.get("key") == key:
            log(f"  reusing {path.relative_to(ROOT)}")
            return load_model(path), {**stored["record"], "reused": True}
        log(f"  {path.relative_to(ROOT)} was trained with other settings: training again")
    model, record = train()
    save_model(model, path)
    write_text(meta, json.dumps({"key": key, "record": record}, indent=1))
    return model, {**record, "reused": False}


def model_key(settings, spec, **extra):
    return {
        "data": spec,
        "arch": {k: list(v) if isinstance(v, tuple) else v for k, v in ARCH.items()},
        "seed": settings["seed"],
        **extra,
    }


def row_record(kind, resolution, epochs, model, history, seconds, cropper_macs):
    from tfscissor.analysis import profile_model

    profile = profile_model(model)
    return {
        "kind": kind,
        "resolution": resolution,
        "epochs": epochs,
        "classifier_macs": profile.macs,
        "cropper_macs": cropper_macs,
        "total_macs": profile.macs + cropper_macs,
        "params": profile.params,
        # A distilled fit names its accuracy after the distillation targets it is measured on.
        "train_accuracy": history.get("accuracy", history.get("distilled_accuracy"))[-1],
        "monitor_accuracy": history.get("val_accuracy", history.get("val_distilled_accuracy", [float("nan")]))[-1],
        "train_seconds": seconds,
    }


def train_baseline(dataset, settings, epochs, path, reuse):
    from tfscissor.models.training import evaluate_classifier, train_classifier

    def train():
        model = classifier(settings["size"], settings)
        start = time.perf_counter()
        history = train_classifier(
            model,
            monitored(dataset, settings["monitor"]),
            epochs=epochs,
            batch_size=64,
            learning_rate=settings["lr"],
            seed=settings["seed"],
            callbacks=[EpochLine(f"baseline {epochs} ep")],
        )
        return model, row_record("baseline", settings["size"], epochs, model, history, time.perf_counter() - start, 0)

    key = model_key(settings, dataset.spec, epochs=epochs, lr=settings["lr"])
    model, record = cached(path, key, reuse, train)
    record["accuracy"] = evaluate_classifier(model, dataset.val)
    return record, model


def cropper_budget(settings):
    """What the cropper may cost, as ``crop train`` sizes it: shares of the classifier at the resolution where the
    goals are judged (its MACs scale with R^2; its int8 bytes do not change with R)."""
    from tfscissor.analysis import profile_model
    from tfscissor.crop.sizing import BYTES_SHARE, MACS_SHARE, estimated_int8_bytes

    at = goal_resolution(settings)
    model = classifier(at, settings)
    return {
        "macs": MACS_SHARE * profile_model(model).macs,
        "bytes": BYTES_SHARE * estimated_int8_bytes(model),
        "at": at,
    }


def train_cropper_once(dataset, settings, path, reuse):
    from tfscissor.analysis import profile_model
    from tfscissor.crop.sizing import MACS_SHARE, fitted_cropper
    from tfscissor.crop.training import box_report, predict_boxes, train_cropper

    train, val = dataset.train, dataset.val
    budget = cropper_budget(settings)

    def fit():
        cropper = fitted_cropper(dataset.image_shape, budget["macs"], seed=settings["seed"], max_bytes=budget["bytes"])
        start = time.perf_counter()
        history = train_cropper(
            cropper,
            train.images,
            train.boxes,
            val.images,
            val.boxes,
            epochs=settings["cropper_epochs"],
            learning_rate=settings["cropper_lr"],
            seed=settings["seed"],
            callbacks=[EpochLine("cropper")],
        )
        return cropper, {"train_seconds": time.perf_counter() - start, "train_mean_iou": history["mean_iou"][-1]}

    key = model_key(
        settings,
        dataset.spec,
        cropper_epochs=settings["cropper_epochs"],
        cropper_lr=settings["cropper_lr"],
        budget=[budget["macs"], budget["bytes"]],
    )
    cropper, record = cached(path, key, reuse, fit)
    profile = profile_model(cropper)
    view = cropper.get_layer("view").pool_size[0] if _has(cropper, "view") else 1
    start = time.perf_counter()
    boxes = {"train": predict_boxes(cropper, train.images), "val": predict_boxes(cropper, val.images)}
    record.update(
        macs=profile.macs,
        params=profile.params,
        macs_share=MACS_SHARE,
        sized_at=budget["at"],
        view=dataset.image_shape[0] // view,
        stem_channels=int(cropper.get_layer("stem_conv").filters) if _has(cropper, "stem_conv") else None,
        predict_seconds=time.perf_counter() - start,
        val=box_report(boxes["val"], val.boxes),
        train=box_report(boxes["train"], train.boxes),
        epochs=settings["cropper_epochs"],
        lr=settings["cropper_lr"],
    )
    return cropper, boxes, record


def _has(model, name):
    return any(layer.name == name for layer in model.layers)


def downscale_row(dataset, settings, resolution):
    from tfscissor.models.training import evaluate_classifier, train_classifier

    small = downscaled(dataset, resolution)
    model = classifier(resolution, settings)
    start = time.perf_counter()
    history = train_classifier(
        model,
        monitored(small, settings["monitor"]),
        epochs=settings["epochs"],
        batch_size=64,
        learning_rate=settings["lr"],
        seed=settings["seed"],
        callbacks=[EpochLine(f"downscale {resolution}")],
    )
    record = row_record("downscale", resolution, settings["epochs"], model, history, time.perf_counter() - start, 0)
    record["accuracy"] = evaluate_classifier(model, small.val)
    return record


def crop_row(dataset, settings, resolution, kind, cropper, boxes, cropper_macs, teacher=None):
    """A learned (cropper's boxes mixed with jittered true boxes) or oracle (jittered true boxes) crop row; a
    learned row learns from ``teacher``'s outputs on the whole images too, when given."""
    from tfscissor.crop.pipeline import TwoStage, train_on_crops
    from tfscissor.data.dataset import Split
    from tfscissor.deploy.crop_policy import CropPolicy
    from tfscissor.models.training import evaluate_classifier

    train, val = dataset.train, dataset.val
    count = settings["monitor"] or len(val)
    learned = kind == "learned"
    start = time.perf_counter()
    model, history = train_on_crops(
        classifier(resolution, settings),
        monitored(dataset, count),
        resolution=resolution,
        predicted=boxes["train"] if learned else None,
        truth=train.boxes,
        val_boxes=(boxes["val"] if learned else val.boxes)[:count],
        mix=settings["mix"],
        epochs=settings["epochs"],
        batch_size=64,
        learning_rate=settings["lr"],
        seed=settings["seed"],
        callbacks=[EpochLine(f"{kind} {resolution}")],
        teacher=teacher if learned else None,
    )
    record = row_record(kind, resolution, settings["epochs"], model, history, time.perf_counter() - start, cropper_macs)
    policy = CropPolicy()
    true_crops = Split(policy.crop(val.images, val.boxes, resolution).images, val.labels)
    pipeline = TwoStage(cropper, model, policy).evaluate(val)
    if learned:
        record.update(
            accuracy=pipeline["accuracy"],
            swapped_accuracy=evaluate_classifier(model, true_crops),  # this classifier on true-box crops
            fallbacks=pipeline["fallbacks"],
            boxes=pipeline["boxes"],
            pipeline_macs=pipeline["macs"],
        )
    else:
        record.update(
            accuracy=evaluate_classifier(model, true_crops),
            swapped_accuracy=pipeline["accuracy"],  # this classifier on the cropper's boxes
        )
    return record


# --- comparisons -----------------------------------------------------------------------------------------


def interpolate_log(rows, macs):
    """Accuracy of ``rows`` (one line: total_macs, accuracy) at ``macs``, linear in log(MACs) between the two
    neighbouring rows; None outside their range. Returns (accuracy, left row, right row)."""
    rows = sorted(rows, key=lambda r: r["total_macs"])
    for left, right in itertools.pairwise(rows):
        if left["total_macs"] <= macs <= right["total_macs"]:
            span = math.log(right["total_macs"]) - math.log(left["total_macs"])
            t = (math.log(macs) - math.log(left["total_macs"])) / span if span else 0.0
            return left["accuracy"] + t * (right["accuracy"] - left["accuracy"]), left, right
    return None, None, None


def comparisons(result):
    """The goals at the largest crop resolution within BUDGET of the baseline's MACs, or None without it."""
    rows = result["rows"]
    baselines = sorted((r for r in rows if r["kind"] == "baseline"), key=lambda r: r["epochs"])
    if not baselines:
        return None
    limit = BUDGET * baselines[0]["total_macs"]
    by = {kind: {r["resolution"]: r for r in rows if r["kind"] == kind} for kind in KINDS}
    within = [r for r in by["learned"].values() if r["total_macs"] <= limit]
    if not within:
        return None
    learned = max(within, key=lambda r: r["total_macs"])
    resolution = learned["resolution"]
    down, left, right = interpolate_log(list(by["downscale"].values()), learned["total_macs"])
    oracle = by["oracle"].get(resolution)
    best = max(baselines, key=lambda r: r["accuracy"])
    return {
        "resolution": resolution,
        "limit_macs": limit,
        "learned": learned["accuracy"],
        "total_macs": learned["total_macs"],
        "share": learned["total_macs"] / baselines[0]["total_macs"],
        "baselines": [[r["epochs"], r["accuracy"]] for r in baselines],  # by epochs
        "best_baseline": best["accuracy"],
        "best_baseline_epochs": best["epochs"],
        "downscale_equal_macs": down,
        "downscale_between": [left["resolution"], right["resolution"]] if left else None,
        "oracle": oracle["accuracy"] if oracle else None,
        "goal_baseline": learned["accuracy"] >= best["accuracy"],
        "goal_downscale": None if down is None else learned["accuracy"] - down >= 0.08,
        "goal_oracle": None if oracle is None else oracle["accuracy"] - learned["accuracy"] <= 0.05,
    }


def standard_error(accuracy, count):
    return math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / count)


def goal_lines(c, val_images):
    def verdict(ok):
        return "**met**" if ok else "**not met**" if ok is not None else "**not measured**"

    points = 100 * c["learned"]
    base = ", ".join(f"{100 * acc:.2f} with {plural(ep, 'epoch')}" for ep, acc in c["baselines"])
    lines = [
        f"Goals at {c['resolution']} px, the largest crop resolution whose total MACs ({c['total_macs']:,}, "
        f"{c['share']:.1%} of the baseline's) are within {BUDGET:.0%} of the baseline's; crop-then-classify "
        f"reaches **{points:.2f}**:",
        "",
        f"- At or above the full-resolution baseline ({base}; the goal is read against the better one, "
        f"{plural(c['best_baseline_epochs'], 'epoch')}): {verdict(c['goal_baseline'])} "
        f"({points - 100 * c['best_baseline']:+.2f} points; "
        + ", ".join(f"{points - 100 * acc:+.2f} vs {plural(ep, 'epoch')}" for ep, acc in c["baselines"])
        + ")",
    ]
    if c["downscale_equal_macs"] is None:
        lines.append(
            "- At least 8 points ahead of down-scaling at equal MACs: **not measured** (no down-scaling rows "
            "on both sides of its MACs)"
        )
    else:
        a, b = c["downscale_between"]
        lines.append(
            f"- At least 8 points ahead of plain down-scaling at equal MACs ({100 * c['downscale_equal_macs']:.2f}, "
            f"interpolated linearly in log(MACs) between {a} and {b} px): {verdict(c['goal_downscale'])} "
            f"({points - 100 * c['downscale_equal_macs']:+.2f} points)"
        )
    if c["oracle"] is None:
        lines.append(f"- Within 5 points of the oracle at {c['resolution']} px: **not measured**")
    else:
        lines.append(
            f"- Within 5 points of the oracle at {c['resolution']} px ({100 * c['oracle']:.2f}): "
            f"{verdict(c['goal_oracle'])} ({points - 100 * c['oracle']:+.2f} points)"
        )
    se = 100 * standard_error(c["learned"], val_images)
    lines += [
        "",
        f"Noise: one seed; with {val_images} val images one image is {100 / val_images:.3f} points and the "
        f"binomial standard error of an accuracy near {points:.0f}% is {se:.2f} points, so a difference between "
        f"two rows under about {2 * math.sqrt(2) * se:.1f} points (two standard errors of a difference) is noise.",
    ]
    return lines


# --- report ----------------------------------------------------------------------------------------------


def fmt_macs(macs):
    return f"{macs / 1e6:.2f} M"


def markdown(result):
    s, crop = result["settings"], result.get("cropper")
    rows = sorted(result["rows"], key=lambda r: (list(KINDS).index(r["kind"]), r["resolution"], r["epochs"]))
    base = min((r for r in rows if r["kind"] == "baseline"), key=lambda r: r["epochs"], default=None)
    base_macs = base["total_macs"] if base else None
    lines = [
        "## Smart Scissor crop-then-classify on cluttered Fashion-MNIST: accuracy against total MACs",
        "",
        f"- Command: `{result['command']}` (whole run {result['minutes']:.1f} min)",
        f"- Machine: {result['machine']}; load average {result['load_start']:.2f} at the start, "
        f"{result.get('load_end', float('nan')):.2f} at the end (other work on the machine slows the timings, "
        "not the accuracies)",
        f"- Date: {result['date']}",
        f"- Data: `{result['data']}`: {result['train_images']} train / {result['val_images']} val images of "
        f"{s['size']}x{s['size']}x3, one Fashion-MNIST item among clutter per image with its true box; "
        f"{s.get('data_seeds', 1)} data seed(s) joined, at most 48 distinct items per class, split and seed (the "
        "generator's bank), val items from Fashion-MNIST's test set",
        f"- Classifier, every row: `build_model('resnet', (R, R, 3), 10, blocks=(2, 2, 2), widths=(16, 32, 64), "
        f"stem_stride=2, seed={s['seed']})`, {plural(s['epochs'], 'epoch')} (the longer baseline {s['long_epochs']}), "
        f"batch 64, Adam at lr {s['lr']} with cosine decay to 0, seed {s['seed']}",
    ]
    if crop:
        lines.append(
            f"- Cropper: `fitted_cropper` sized as `crop train` sizes it, against the classifier at "
            f"{crop.get('sized_at', '-')} px ({crop['macs_share']:.0%} of its MACs, half its int8 bytes): {crop['view']}-px view, "
            f"stem {crop['stem_channels']} channels, {crop['macs']:,} MACs, {crop['params']:,} params; trained once "
            f"on the true boxes, {plural(crop['epochs'], 'epoch')} at lr {crop['lr']} (cosine), batch 64, flips"
            + (f", {crop['train_seconds']:.0f} s" if "train_seconds" in crop else "")
            + (" (reused from the cache)" if crop.get("reused") else "")
            + f". Val boxes: mean IoU **{crop['val']['mean_iou']:.3f}**, IoU > 0.5 for "
            f"**{crop['val']['iou_above_0_5']:.1%}**, {crop['val']['degenerate']} degenerate (train: mean IoU "
            f"{crop['train']['mean_iou']:.3f}, IoU > 0.5 for {crop['train']['iou_above_0_5']:.1%})"
        )
    lines += [
        "- Rows: (a) the whole image resized to R px with the crop policy's triangle filter; (b) `train_on_crops` "
        f"on the cropper's train boxes mixed {s['mix']:.0%} with jittered true boxes (shift 15%, scale 0.85-1.2), "
        + (
            f"learning also from the {s['epochs']}-epoch baseline's outputs on each whole image (distillation, as "
            "`crop finetune` does by default), "
            if s.get("distill")
            else ""
        )
        + "evaluated by `TwoStage(cropper, classifier).evaluate(val)` (the default `CropPolicy`: squared box, side "
        "regulated to 24/48/72/96 px); (c) `train_on_crops` on jittered true boxes only, evaluated on crops at the "
        "true val boxes. Total MACs count the cropper for (b) and (c) (for (c) it stands for a perfect cropper of "
        "the same cost). 'Other boxes': (b)'s classifier on true-box crops, (c)'s on the cropper's crops.",
        "- Accuracy: the whole val split. 'Train s': the training time of the row (other work on the machine "
        "inflates it).",
        "",
        "| pipeline | classifier input | epochs | classifier MACs | total MACs | % of baseline | val accuracy "
        "| other boxes | train accuracy (last epoch) | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = f"{r['total_macs'] / base_macs:.1%}" if base_macs else "-"
        other = f"{r['swapped_accuracy']:.4f}" if "swapped_accuracy" in r else "-"
        seconds = f"{r['train_seconds']:.0f}" + (" (cached)" if r.get("reused") else "")
        lines.append(
            f"| {KINDS[r['kind']]} | {r['resolution']} px | {r['epochs']} | {fmt_macs(r['classifier_macs'])} | "
            f"{fmt_macs(r['total_macs'])} | {share} | **{r['accuracy']:.4f}** | {other} | "
            f"{r['train_accuracy']:.4f} | {seconds} |"
        )
    lines.append("")
    c = result.get("comparison")
    if c:
        lines += [*goal_lines(c, result["val_images"]), ""]
    if result.get("plot"):
        lines += [f"![accuracy against total MACs]({result['plot']})", ""]
    return "\n".join(lines)


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    base = min((r for r in rows if r["kind"] == "baseline"), key=lambda r: r["epochs"])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    styles = {"downscale": ("o-", "tab:blue"), "learned": ("s-", "tab:red"), "oracle": ("^--", "tab:green")}
    for kind, (style, colour) in styles.items():
        line = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["total_macs"])
        if not line:
            continue
        x = [r["total_macs"] / 1e6 for r in line]
        y = [100 * r["accuracy"] for r in line]
        ax.plot(x, y, style, color=colour, label=KINDS[kind])
        for r, xi, yi in zip(line, x, y, strict=True):
            ax.annotate(f"{r['resolution']}", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
    baselines = sorted((r for r in rows if r["kind"] == "baseline"), key=lambda r: r["epochs"])
    for r, marker in zip(baselines, "*P*P", strict=False):
        ax.plot(
            [r["total_macs"] / 1e6],
            [100 * r["accuracy"]],
            marker,
            color="black",
            markersize=11,
            linestyle="none",
            label=f"baseline 96 px, {plural(r['epochs'], 'epoch')}",
        )
    limit = BUDGET * base["total_macs"] / 1e6
    ax.axvline(limit, color="grey", linestyle=":", label=f"{BUDGET:.0%} of the baseline's MACs")
    ax.set_xscale("log")
    ticks = []
    for tick in sorted({round(r["total_macs"] / 1e6, 1) for r in rows}):
        if not ticks or tick / ticks[-1] > 1.06:  # labels closer than 6% overlap on this axis
            ticks.append(tick)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("MACs per image, cropper included (millions, log scale)")
    ax.set_ylabel("val accuracy (%)")
    ax.set_title(
        f"Crop-then-classify, cluttered Fashion-MNIST 96x96 ({plural(result['settings']['epochs'], 'epoch')} per row)"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- main ------------------------------------------------------------------------------------------------


def goal_resolution(settings):
    """The largest crop resolution whose classifier, with a cropper of MACS_SHARE of it, fits BUDGET of the
    baseline's MACs (classifier MACs scale with R^2; the totals are checked again in comparisons)."""
    from tfscissor.crop.sizing import MACS_SHARE

    fits = [r for r in settings["crops"] if r * r * (1 + MACS_SHARE) <= BUDGET * settings["size"] ** 2]
    return max(fits, default=settings["crops"][0])


def plan(settings):
    """The rows in the order they run: first those the goals need (so a stopped run can still answer them)."""
    at = goal_resolution(settings)
    first = [("learned", at), ("oracle", at)]
    down = settings["downscale"]
    neighbours = [r for r in down if r <= at][-1:] + [r for r in down if r > at][:1]
    first += [("downscale", r) for r in neighbours]
    rest = [("downscale", r) for r in down] + [(k, r) for k in ("learned", "oracle") for r in settings["crops"]]
    return first + [("long_baseline", None)] + [row for row in rest if row not in first]


def main(argv=None):
    args, settings = parse_args(argv)
    name = "crop_pipeline_quick" if args.quick else "crop_pipeline"
    json_path, md_path = RUNS / f"{name}.json", RUNS / f"{name}.md"
    plot_path = RUNS / f"{name}.png" if args.quick else ROOT / "bench" / "crop_pipeline.png"
    RUNS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = " ".join(["python bench/crop_pipeline.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))]).strip()

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
        "data": dataset.spec,
        "train_images": len(dataset.train),
        "val_images": len(dataset.val),
        "rows": [],
    }

    def save():
        result["minutes"] = (time.perf_counter() - started) / 60
        result["comparison"] = comparisons(result)
        write_text(json_path, json.dumps(result, indent=1))

    def done(row):
        result["rows"].append(row)
        save()
        extra = f", other boxes {row['swapped_accuracy']:.4f}" if "swapped_accuracy" in row else ""
        log(
            f"{KINDS[row['kind']]} at {row['resolution']} px, {plural(row['epochs'], 'epoch')}: val accuracy "
            f"{row['accuracy']:.4f}{extra} (train {row['train_accuracy']:.4f}), {fmt_macs(row['total_macs'])} MACs, "
            f"{row['train_seconds']:.0f} s; {(time.perf_counter() - started) / 60:.1f} min so far"
        )

    epochs = settings["epochs"]
    log(f"baseline at {settings['size']} px, {epochs} epochs")
    baseline, baseline_model = train_baseline(
        dataset, settings, epochs, RUNS / f"{name}_baseline_{epochs}ep.keras", args.reuse
    )
    done(baseline)
    teacher = baseline_model if settings["distill"] else None

    log("cropper")
    cropper, boxes, result["cropper"] = train_cropper_once(
        dataset, settings, RUNS / f"{name}_cropper.keras", args.reuse
    )
    v = result["cropper"]["val"]
    log(
        f"cropper: {result['cropper']['macs']:,} MACs, val mean IoU {v['mean_iou']:.3f}, IoU > 0.5 for "
        f"{v['iou_above_0_5']:.1%}, {v['degenerate']} degenerate"
    )
    save()

    for kind, resolution in plan(settings):
        if kind == "long_baseline":
            long = settings["long_epochs"]
            log(f"baseline at {settings['size']} px, {long} epochs")
            done(train_baseline(dataset, settings, long, RUNS / f"{name}_baseline_{long}ep.keras", args.reuse)[0])
        elif kind == "downscale":
            done(downscale_row(dataset, settings, resolution))
        else:
            done(crop_row(dataset, settings, resolution, kind, cropper, boxes, result["cropper"]["macs"], teacher))

    result["load_end"] = os.getloadavg()[0]
    plot(result, plot_path)
    result["plot"] = os.path.relpath(plot_path, ROOT / "bench")
    save()
    text = markdown(result)
    write_text(md_path, text + "\n")
    if not args.quick:
        update_section("crop_pipeline", text)
    print(text)
    c = result["comparison"]
    if c:
        log("\n".join(line for line in goal_lines(c, result["val_images"]) if line))
    log(f"wrote {json_path.relative_to(ROOT)}, {md_path.relative_to(ROOT)}, {plot_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
