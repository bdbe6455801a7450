"""Which channels to keep: a threshold on the score, or a global fraction of channels to remove."""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from tfscissor.errors import UsageError
from tfscissor.trim.criteria import get_criterion
from tfscissor.trim.groups import find_groups
from tfscissor.trim.surgery import SurgeryPlan, rebuild


@dataclass(frozen=True)
class TrimResult:
    """The trimmed model and, per group (keyed by producer), the channels kept and every channel's score."""

    model: object
    kept: dict = field(default_factory=dict)  # producer -> sorted indices of the kept channels
    scores: dict = field(default_factory=dict)  # producer -> score per original channel
    channels: dict = field(default_factory=dict)  # producer -> original channel count
    statistics: object = None  # the ChannelStatistics that scored the channels, when collected here


def _check_options(ratio, min_relevance, round_to, min_channels):
    if (ratio is None) == (min_relevance is None):
        raise UsageError(
            "give exactly one trimming policy: ratio (the fraction of channels to remove) or min_relevance (a threshold)"
        )
    if ratio is not None and not 0.0 <= ratio < 1.0:
        raise UsageError(f"ratio must be in [0, 1), got {ratio}")
    if min_relevance is not None and min_relevance < 0:
        raise UsageError(f"min_relevance must be >= 0, got {min_relevance}")
    if round_to < 1 or min_channels < 1:
        raise UsageError(f"round_to and min_channels must be >= 1, got {round_to} and {min_channels}")


def _top(scores, count):
    # Stable: among equal scores the lower channel index wins, so results are reproducible.
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:count])


def _finalise(count, channels, round_to, min_channels):
    count = max(count, min(min_channels, channels))
    return min(channels, -(-count // round_to) * round_to)


def select_channels(scores, *, ratio=None, min_relevance=None, round_to=1, min_channels=1):
    """Map producer -> kept channel indices, from producer -> per-channel scores.

    ``min_relevance``: drop every channel whose score is at or below it (0 drops exactly the dead channels
    under the relevance criterion). ``ratio``: drop that fraction of all channels, lowest scores first across
    every group. Then each group keeps at least ``min_channels`` and a multiple of ``round_to`` (rounding up,
    so fewer channels may be removed than asked).
    """
    _check_options(ratio, min_relevance, round_to, min_channels)
    if min_relevance is not None:
        counts = {name: int(np.sum(s > min_relevance)) for name, s in scores.items()}
    else:
        counts = {name: len(s) for name, s in scores.items()}
        ranked = sorted((float(v), name) for name, s in scores.items() for v in s)
        to_remove = int(np.floor(ratio * len(ranked)))
        for _, name in ranked:
            if to_remove == 0:
                break
            if counts[name] > min_channels:
                counts[name] -= 1
                to_remove -= 1
    return {name: _top(s, _finalise(counts[name], len(s), round_to, min_channels)) for name, s in scores.items()}


def trim_model(
    model,
    statistics,
    *,
    criterion="relevance",
    ratio=None,
    min_relevance=None,
    round_to=1,
    min_channels=1,
    exclude=(),
    criterion_options=None,
):
    """Score every channel group of ``model`` with ``criterion`` and rebuild it without the low scorers.

    ``statistics`` is a :class:`ChannelStatistics` collected on a representative set (see
    :func:`collect_statistics`). Returns a :class:`TrimResult`; ``model`` itself is unchanged.
    """
    score_fn = get_criterion(criterion)
    groups = find_groups(model, exclude=exclude)
    scores = {
        g.producer: np.asarray(score_fn(g, statistics, model, **(criterion_options or {})), float) for g in groups
    }
    kept = select_channels(
        scores, ratio=ratio, min_relevance=min_relevance, round_to=round_to, min_channels=min_channels
    )
    plan = SurgeryPlan()
    for group in groups:
        group.apply(plan, kept[group.producer])
    return TrimResult(
        model=rebuild(model, plan),
        kept=kept,
        scores=scores,
        channels={g.producer: g.channels for g in groups},
    )


def trim_classifier(model, representative_images, *, batch_size=64, **options):
    """Collect activation statistics of ``model`` on ``representative_images``, then :func:`trim_model`.

    Returns the :class:`TrimResult` with the statistics used, so they can be saved and inspected.
    """
    from tfscissor.trim.callback import collect_statistics

    taps = [g.tap for g in find_groups(model, exclude=options.get("exclude", ()))]
    statistics = collect_statistics(model, np.asarray(representative_images, np.float32), taps, batch_size)
    return dataclasses.replace(trim_model(model, statistics, **options), statistics=statistics)
