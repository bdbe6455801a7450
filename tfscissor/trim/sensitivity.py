"""Measured sensitivity: what each group costs the loss when part of it goes, on a calibration batch.

Scores rank channels; they do not say how much a layer can lose before the model breaks. Here each group is
trimmed alone to a few levels (its lowest-scored channels first), the trimmed model's loss is measured, and
the measured curves set how many channels each group gives up: the budget goes where the loss grows least.
The same measurement names the groups that cost most when a trim goes wrong.
"""

import numpy as np

from tfscissor.models.training import are_probabilities
from tfscissor.trim.defaults import layer_limit

LEVELS = (0.25, 0.5, 0.75)


def classification_loss(model, images, labels=None, batch_size=256):
    """Mean cross-entropy of ``model`` on ``images``: against ``labels``, or the model's own top-1 where None.

    Softmax outputs (rows of non-negative numbers summing to one) are read as probabilities, others as logits.
    """
    outputs = np.asarray(model.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0), np.float64)
    if labels is None:
        labels = np.argmax(outputs, axis=-1)
    if not are_probabilities(outputs):
        outputs = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
        outputs /= outputs.sum(axis=-1, keepdims=True)
    picked = outputs[np.arange(len(outputs)), np.asarray(labels, np.int64)]
    return float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))


def group_losses(groups, build, images, labels, kept):
    """Group name -> the loss after trimming that group alone to ``kept[name]`` (its kept channel indices),
    for each group named in ``kept``. ``build(kept)`` rebuilds the model from a kept set for every group."""
    full = {group.name: np.arange(group.channels) for group in groups}
    return {
        name: classification_loss(build({**full, name: channels}), images, labels) for name, channels in kept.items()
    }


def _lowest_removed(group, scores, fraction):
    keep = max(1, group.channels - int(round(fraction * group.channels)))
    return np.sort(np.argsort(-scores, kind="stable")[:keep])


def _levels(limit, levels):
    """The fractions of a group to measure: ``levels`` up to its ``limit``, or the limit alone if it is below
    them all, or none if the group may lose nothing."""
    return [level for level in levels if level <= limit + 1e-9] or ([limit] if limit > 0 else [])


def measure_sensitivity(groups, scores, build, images, labels=None, *, max_layer_ratio=1.0, levels=LEVELS):
    """Group name -> (fractions removed, loss increases), starting at (0, 0), for each of ``levels`` up to
    ``max_layer_ratio`` (one number, or group name -> number). ``build(kept)`` rebuilds the model keeping
    channels ``kept`` (group -> indices)."""
    full = {group.name: np.arange(group.channels) for group in groups}
    base = classification_loss(build(full), images, labels)
    measured = {group.name: _levels(layer_limit(max_layer_ratio, group.name), levels) for group in groups}
    curves = {group.name: ([0.0], [0.0]) for group in groups}
    for fraction in sorted({fraction for fractions in measured.values() for fraction in fractions}):
        kept = {
            group.name: _lowest_removed(group, scores[group.name], fraction)
            for group in groups
            if fraction in measured[group.name]
        }
        for name, loss in group_losses(groups, build, images, labels, kept).items():
            curves[name][0].append(fraction)
            curves[name][1].append(max(loss - base, 0.0))
    return {name: (np.array(x), np.maximum.accumulate(np.array(y))) for name, (x, y) in curves.items()}


def sensitivity_scores(scores, curves):
    """Selection scores from measured curves: the k-th lowest-scored channel of a group scores the loss that
    removing it adds (the curve's step from k - 1 to k channels removed, interpolated), so that removing the
    lowest scores first across groups spends the budget where the loss grows least. Within a group the order
    stays the criterion's."""
    result = {}
    for name, values in scores.items():
        count = len(values)
        fractions, losses = curves[name]
        removed = np.arange(count + 1) / count
        # Past the last measured level the curve goes on at its last slope: never cheaper than measured.
        slope = (losses[-1] - losses[-2]) / (fractions[-1] - fractions[-2]) if len(fractions) > 1 else 0.0
        cost = np.where(
            removed <= fractions[-1],
            np.interp(removed, fractions, losses),
            losses[-1] + max(slope, 0.0) * (removed - fractions[-1]),
        )
        steps = np.maximum.accumulate(np.diff(cost))
        # Equal steps keep the criterion's order: a tiny rise with the rank breaks the ties.
        steps = steps + np.arange(count) * 1e-9 * (steps.max() + 1e-12)
        ranked = np.empty(count)
        ranked[np.argsort(values, kind="stable")] = steps
        result[name] = ranked
    return result
