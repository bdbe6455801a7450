"""The (depth, width, resolution) search: candidates built by real surgery, measured on every budget axis,
scored cheaply, the best few fine-tuned.

A candidate removes the ``depth`` lowest-scored residual blocks (:func:`score_blocks`), then trims
channels by relevance until ``width`` of its MACs are left (:func:`tfscissor.trim.trim_model`, so the width
is allocated per layer, not one multiplier), then moves to ``resolution`` (:func:`with_input_size`; the
images come from ``data_at(resolution)``, whole images resized or a cropper's crops). Every candidate is
measured on the budget's axes; those within it are scored by one of :data:`SCORES`: ``bn`` (batch-norm
statistics re-estimated on calibration images at the candidate's resolution, then top-1 accuracy on validation
images; no training, seconds per candidate) or ``tune`` (the same, then one short fine-tune on a fixed subset
of the training images before the accuracy; slower, and closer to how a candidate ranks after fine-tuning
when the surgery or the new resolution moves it far from the original). Then a refinement bisects the width of the best-scored (depth, resolution)
pairs to the edge of the budget, since grid widths leave part of it unused. The ``top`` best are fine-tuned and the most
accurate wins.

Results are appended to a JSON file after every candidate when ``resume`` is given, and read back by a later
call with the same model, data (as seen: the calibration images), budget, grid and scoring, so a stopped
search continues where it was; the fine-tunes of the best few always run again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tfscissor.data.dataset import Dataset, Split, resize_images
from tfscissor.errors import ModelError, UsageError
from tfscissor.io import write_text
from tfscissor.models.training import evaluate_classifier, train_classifier
from tfscissor.shrink.budget import combine_costs, measure_costs, violations
from tfscissor.trim import collect_statistics, tap_names, trim_model

__all__ = [
    "SCORES",
    "Candidate",
    "SearchResult",
    "build_candidate",
    "recalibrate_batch_norm",
    "resized",
    "score_bn",
    "score_tune",
    "search",
]


@dataclass(frozen=True)
class Candidate:
    """Blocks removed, the fraction of MACs width trimming keeps (1: none), the input side in pixels."""

    depth: int
    width: float
    resolution: int

    def __str__(self):
        return f"d-{self.depth} w{self.width:g} r{self.resolution}"


@dataclass
class SearchResult:
    """The winner (fine-tuned), its candidate, every candidate's row, and the original's costs."""

    model: object
    candidate: Candidate
    rows: list
    original: dict = field(default_factory=dict)


def resized(dataset):
    """``data_at`` for :func:`search` without a cropper: the whole images resized to each resolution (cached)."""
    cache = {}

    def data_at(resolution):
        if resolution not in cache:
            size = (resolution, resolution)
            splits = [Split(resize_images(s.images, size), s.labels, s.boxes) for s in (dataset.train, dataset.val)]
            cache[resolution] = Dataset(dataset.spec, dataset.class_names, *splits)
        return cache[resolution]

    return data_at


def recalibrate_batch_norm(model, images, batch_size=64):
    """Re-estimate every BatchNormalization's moving mean and variance on ``images``, in place.

    Each batch runs in training mode with the momentum set so that the moving statistics end as the average
    over all batches (i / (i + 1) at batch i); weights do not change. Surgery and a new resolution shift the
    statistics a layer sees, and this is the cheapest repair before scoring a candidate.
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    try:
        for step, start in enumerate(range(0, len(images), batch_size)):
            for layer in layers:
                layer.momentum = step / (step + 1)
            model(np.asarray(images[start : start + batch_size], np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return model


def build_candidate(model, candidate, order, images, shrunk=None):
    """A new model for ``candidate``: blocks ``order[:depth]`` removed, width-trimmed with statistics
    collected on ``images`` (at ``model``'s own resolution), moved to the candidate's resolution.

    ``shrunk``: a dict kept across calls, holding per depth the model without its blocks and that model's
    statistics, and per (depth, width) the trimmed model: the widths of one depth share one statistics pass
    and the resolutions of one (depth, width) share one surgery.
    """
    from tfscissor.models.graph import with_input_size
    from tfscissor.shrink.depth import remove_blocks

    if candidate.depth > len(order):
        raise UsageError(f"depth {candidate.depth} asks for more blocks than the {len(order)} removable ones")
    shrunk = {} if shrunk is None else shrunk
    depth, trimmed = candidate.depth, ("width", candidate.depth, candidate.width)
    if ("blocks", depth) not in shrunk:
        shrunk["blocks", depth] = remove_blocks(model, order[:depth]) if depth else model
    if trimmed not in shrunk:
        smaller = shrunk["blocks", depth]
        if candidate.width < 1.0:
            if ("statistics", depth) not in shrunk:
                shrunk["statistics", depth] = collect_statistics(
                    smaller, np.asarray(images, np.float32), tap_names(smaller)
                )
            smaller = trim_model(smaller, shrunk["statistics", depth], target_macs=candidate.width).model
        shrunk[trimmed] = smaller
    # A copy at the candidate's size: the cached model itself is never scored or trained.
    return with_input_size(shrunk[trimmed], candidate.resolution)


def score_bn(model, data, calibration, val, **_):
    """Accuracy on ``val`` after re-estimating batch-norm statistics on the ``calibration`` images."""

    recalibrate_batch_norm(model, calibration)
    return evaluate_classifier(model, val)


def score_tune(model, data, calibration, val, *, tune, learning_rate, seed):
    """Accuracy on ``val`` after :func:`score_bn`'s re-estimation and one epoch on the ``tune`` training
    images (the same indices for every candidate, so the scores compare)."""

    recalibrate_batch_norm(model, calibration)
    short = Dataset(data.spec, data.class_names, Split(data.train.images[tune], data.train.labels[tune]), val)
    return train_classifier(model, short, epochs=1, learning_rate=learning_rate, seed=seed)["val_accuracy"][-1]


# How a candidate within budget is scored: name -> function(model, data, calibration images, val split, *,
# tune, learning_rate, seed) -> accuracy.
SCORES = {"bn": score_bn, "tune": score_tune}


def _amount(value):
    """A cost for a message: whole numbers with thousands separators, milliseconds to three digits."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _fingerprint(model, limits, grid, settings, images):
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(json.dumps([[str(x) for x in limits], [str(c) for c in grid], settings], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _brackets(rows):
    """Per (depth, resolution) in a fixed order: the widest width that fits and the narrowest wider one that
    does not, as (depth, resolution, fits, over); pairs with no such bracket are left out."""
    groups = {}
    for row in rows:
        if "costs" in row:
            groups.setdefault((row["depth"], row["resolution"]), []).append(row)
    for (depth, resolution), group in sorted(groups.items()):
        fits = [row["width"] for row in group if row["feasible"]]
        if fits:
            over = [row["width"] for row in group if not row["feasible"] and row["width"] > max(fits)]
            if over:
                yield depth, resolution, max(fits), min(over)


def search(
    model,
    data_at,
    limits,
    *,
    depths=(0, 1, 2),
    widths=(1.0, 0.75, 0.5),
    resolutions=None,
    refine_steps=3,
    refine_pairs=4,
    depth_criterion="relevance",
    beside=None,
    calibration=256,
    score="bn",
    tune_images=1024,
    score_samples=1000,
    top=2,
    fine_tune_epochs=1,
    learning_rate=1e-3,
    seed=0,
    resume=None,
    progress=None,
    callbacks=(),
    teacher=None,
    teacher_data=None,
):
    """Search (depth, width, resolution) for the most accurate ``model`` variant within ``limits``.

    ``data_at(resolution)`` returns a :class:`Dataset` with images at that side (``resolutions`` defaults to
    the model's own). ``limits`` come from :func:`parse_budget`; fractions are of ``model``'s own costs.

    The grid is every combination of ``depths``, ``widths`` and ``resolutions``. Grid widths leave part of the
    budget unused, so ``refine_steps`` (0: the grid alone) then bisects, for each (depth, resolution), between
    the widest grid width that fits and the next wider one that does not: the refined candidates sit at the
    edge of the budget, and are scored like the rest. Only the ``refine_pairs`` pairs whose best grid score is
    highest are refined, since each step is a new surgery.

    Blocks are removed in the order of ``depth_criterion`` (:data:`DEPTH_CRITERIA`: ``relevance``, the
    branch's activations over the shortcut's; ``bypass``, the loss increase when the block alone is removed),
    measured on the calibration images.

    Candidates within the budget are scored by ``score`` (:data:`SCORES`; ``tune`` trains each on
    ``tune_images`` training images for one epoch) on ``score_samples`` validation images.

    ``beside``: the costs of a stage that runs with every candidate (a cropper, from :func:`measure_costs`),
    added to each candidate's before the budget is checked (:func:`combine_costs`). With a ``teacher``, the
    final fine-tunes distil from its outputs on ``teacher_data`` (see
    :func:`~tfscissor.models.training.train_classifier`; scoring stays on the labels alone). ``progress`` is called
    with each finished row. Returns a :class:`SearchResult`; raises ModelError, stating the smallest
    reachable cost on each axis, when no candidate fits.
    """
    from tfscissor.shrink.depth import removal_order, score_blocks

    own = int(model.input_shape[1])
    resolutions = tuple(resolutions or (own,))
    grid = [Candidate(d, float(w), int(r)) for d, w, r in itertools.product(depths, widths, resolutions)]
    axes = tuple(limit.axis for limit in limits)
    if score not in SCORES:
        raise UsageError(f"unknown score {score!r}: use {', '.join(SCORES)}")
    if beside is not None and set(axes) - set(beside):
        raise UsageError(f"the costs beside the model lack {', '.join(sorted(set(axes) - set(beside)))}")
    full = data_at(own)
    rng = np.random.default_rng(seed)
    calib = np.sort(rng.permutation(len(full.train))[:calibration])
    tune = np.sort(rng.permutation(len(full.train))[:tune_images])
    original = measure_costs(model, axes, full.train.images[calib])
    broken = violations(beside, limits, original) if beside is not None else {}
    if broken:
        raise ModelError(
            "the stage beside the model (the cropper) alone breaks the budget: "
            + ", ".join(f"{axis} {_amount(cost)} (budget {_amount(bound)})" for axis, (cost, bound) in broken.items())
            + ": relax the budget or use a smaller cropper"
        )
    scores = score_blocks(model, full.train.images[calib], full.train.labels[calib], depth_criterion)
    order = removal_order(model, scores)
    settings = {
        "data": full.spec,
        "calibration": calibration,
        "score": [score, tune_images, learning_rate] if score == "tune" else [score],
        "score_samples": score_samples,
        "seed": seed,
        "refine": [refine_steps, refine_pairs],
        "depth_criterion": depth_criterion,
        # Latency is measured anew each run: rounded, so that a resumed search with a cropper matches.
        "beside": {axis: float(f"{cost:.2g}") if axis == "latency" else cost for axis, cost in (beside or {}).items()},
    }
    # The calibration images identify the data as seen (crops of a particular cropper, not just the spec).
    key = _fingerprint(model, limits, grid, settings, full.train.images[calib])
    done = {}
    if resume is not None and Path(resume).is_file():
        saved = json.loads(Path(resume).read_text(encoding="utf-8"))
        if saved.get("key") == key:
            # Accuracies after fine-tuning belong to the run that measured them: they are measured again.
            done = {row["candidate"]: {k: v for k, v in row.items() if k != "accuracy"} for row in saved["rows"]}
    rows, shrunk, seen = [], {}, {}

    def visit(candidate, stage):
        if str(candidate) in seen:  # a width given twice, or a bisection that can no longer move
            return seen[str(candidate)]
        row = done.get(str(candidate))
        if row is None:
            row = {"candidate": str(candidate), **asdict(candidate), "stage": stage}
            if candidate.depth > len(order):
                row.update(feasible=False, skipped=f"only {len(order)} removable blocks")
            else:
                data = data_at(candidate.resolution)
                built = build_candidate(model, candidate, order, full.train.images[calib], shrunk)
                costs = measure_costs(built, axes, data.train.images[calib])
                row["costs"] = costs if beside is None else combine_costs(costs, beside)
                row["feasible"] = not violations(row["costs"], limits, original)
                if row["feasible"]:
                    val = Split(data.val.images[:score_samples], data.val.labels[:score_samples])
                    row["score"] = SCORES[score](
                        built, data, data.train.images[calib], val, tune=tune, learning_rate=learning_rate, seed=seed
                    )
        rows.append(row)
        seen[str(candidate)] = row
        if resume is not None:
            write_text(resume, json.dumps({"key": key, "rows": rows}, indent=1) + "\n")
        if progress is not None:
            progress(row)
        return row

    for candidate in grid:
        visit(candidate, "grid")

    def best_score(bracket):
        depth, resolution = bracket[:2]
        return max(r["score"] for r in rows if r["feasible"] and (r["depth"], r["resolution"]) == (depth, resolution))

    for depth, resolution, fits, over in sorted(_brackets(rows), key=best_score, reverse=True)[:refine_pairs]:
        for _ in range(refine_steps):
            middle = round((fits + over) / 2, 4)
            if middle in (fits, over):
                break
            if visit(Candidate(depth, middle, resolution), "refine")["feasible"]:
                fits = middle
            else:
                over = middle
    feasible = [row for row in rows if row["feasible"]]
    if not feasible:
        measured = [row for row in rows if "costs" in row]
        smallest = {axis: min(row["costs"][axis] for row in measured) for axis in axes} if measured else {}
        bounds = {limit.axis: limit.bound(original[limit.axis]) for limit in limits}
        reach = ", ".join(f"{axis} {_amount(smallest[axis])} (budget {_amount(bounds[axis])})" for axis in smallest)
        raise ModelError(
            f"no candidate of {len(grid)} fits the budget {', '.join(map(str, limits))}; the smallest reachable: "
            f"{reach}: relax the budget or search deeper, narrower or lower (depths, widths, resolutions)"
        )
    best = None
    for row in sorted(feasible, key=lambda r: -r["score"])[:top]:
        candidate = Candidate(row["depth"], row["width"], row["resolution"])
        data = data_at(candidate.resolution)
        built = build_candidate(model, candidate, order, full.train.images[calib], shrunk)
        if fine_tune_epochs:
            train_classifier(
                built,
                data,
                epochs=fine_tune_epochs,
                learning_rate=learning_rate,
                seed=seed,
                callbacks=callbacks,
                teacher=teacher,
                teacher_data=teacher_data,
            )
        else:
            recalibrate_batch_norm(built, data.train.images[calib])
        row["accuracy"] = evaluate_classifier(built, data.val)
        if best is None or row["accuracy"] > best[0]["accuracy"]:
            best = (row, built, candidate)
    if resume is not None:
        write_text(resume, json.dumps({"key": key, "rows": rows}, indent=1) + "\n")
    return SearchResult(best[1], best[2], rows, original)
