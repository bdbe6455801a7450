"""Which channels to keep: a threshold on the score, a fraction of channels, or a MACs or parameter budget."""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from tfscissor.errors import UsageError
from tfscissor.models.graph import has_nested_models, inline_nested
from tfscissor.trim.budget import CostModel
from tfscissor.trim.criteria import get_criterion
from tfscissor.trim.dependency import ChannelGraph
from tfscissor.trim.groups import groups_of
from tfscissor.trim.surgery import SurgeryPlan, rebuild

POLICIES = ("ratio", "min_relevance", "target_macs", "target_params")


@dataclass(frozen=True)
class TrimResult:
    """The trimmed model and, per group (keyed by its name), the channels kept and every channel's score."""

    model: object
    kept: dict = field(default_factory=dict)  # group -> sorted indices of the kept channels
    scores: dict = field(default_factory=dict)  # group -> score per original channel
    channels: dict = field(default_factory=dict)  # group -> original channel count
    producers: dict = field(default_factory=dict)  # group -> the layers that make its channels
    statistics: object = None  # the ChannelStatistics that scored the channels, when collected here


def check_policy(policy, round_to=1, min_channels=1):
    """Check that ``policy`` (a dict) names exactly one of :data:`POLICIES` with a valid value."""
    given = {name: value for name, value in policy.items() if value is not None}
    if len(given) != 1:
        raise UsageError(
            "give exactly one trimming policy: ratio (fraction of channels to remove), min_relevance (a score "
            "threshold), target_macs or target_params (fraction of the original to keep)"
        )
    ((name, value),) = given.items()
    if name not in POLICIES:
        raise UsageError(f"unknown trimming policy {name!r}: use one of {', '.join(POLICIES)}")
    if name == "ratio" and not 0.0 <= value < 1.0:
        raise UsageError(f"ratio must be in [0, 1), got {value}")
    if name == "min_relevance" and value < 0:
        raise UsageError(f"min_relevance must be >= 0, got {value}")
    if name.startswith("target_") and not 0.0 < value <= 1.0:
        raise UsageError(f"{name} is the fraction of the original to keep: give a value in (0, 1], got {value}")
    if round_to < 1 or min_channels < 1:
        raise UsageError(f"round_to and min_channels must be >= 1, got {round_to} and {min_channels}")
    return name, value


def _top(scores, count):
    # Stable: among equal scores the lower channel index wins, so results are reproducible.
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:count])


def _finalise(count, channels, round_to, min_channels):
    count = max(count, min(min_channels, channels))
    return min(channels, -(-count // round_to) * round_to)


def _remove_lowest(scores, to_remove, min_channels):
    """Channel counts per group after removing the ``to_remove`` lowest scores across every group."""
    counts = {name: len(s) for name, s in scores.items()}
    ranked = sorted((float(v), name) for name, s in scores.items() for v in s)
    for _, name in ranked:
        if to_remove == 0:
            break
        if counts[name] > min_channels:
            counts[name] -= 1
            to_remove -= 1
    return counts


def select_channels(scores, *, ratio=None, min_relevance=None, round_to=1, min_channels=1, cost=None, target=None):
    """Map group -> kept channel indices, from group -> per-channel scores.

    ``min_relevance``: drop every channel whose score is at or below it (0 drops exactly the dead channels
    under the relevance criterion). ``ratio``: drop that fraction of all channels, lowest scores first across
    every group. ``cost`` and ``target``: drop the lowest-scoring channels until ``cost(kept)`` (a fraction of
    the original) is at most ``target``. Each group keeps at least ``min_channels`` and a multiple of
    ``round_to`` (rounding up, so fewer channels may be removed than asked).
    """
    if cost is not None:
        return _select_for_budget(scores, cost, target, round_to, min_channels)
    check_policy({"ratio": ratio, "min_relevance": min_relevance}, round_to, min_channels)
    if min_relevance is not None:
        counts = {name: int(np.sum(s > min_relevance)) for name, s in scores.items()}
    else:
        total = sum(len(s) for s in scores.values())
        counts = _remove_lowest(scores, int(np.floor(ratio * total)), min_channels)
    return _keep(scores, counts, round_to, min_channels)


def _keep(scores, counts, round_to, min_channels):
    return {name: _top(s, _finalise(counts[name], len(s), round_to, min_channels)) for name, s in scores.items()}


def _select_for_budget(scores, cost, target, round_to, min_channels):
    """The fewest lowest-scoring channels to remove so that ``cost(kept) <= target``: a bisection, as the cost
    only falls as more channels go."""

    def kept_after(to_remove):
        return _keep(scores, _remove_lowest(scores, to_remove, min_channels), round_to, min_channels)

    low, high = 0, sum(len(s) for s in scores.values())
    if cost(kept_after(high)) > target:
        raise UsageError(
            f"the budget {target:.3f} cannot be met: removing every channel but min_channels leaves "
            f"{cost(kept_after(high)):.3f} of the original; raise the target or lower min_channels / round_to"
        )
    while low < high:
        middle = (low + high) // 2
        if cost(kept_after(middle)) <= target:
            high = middle
        else:
            low = middle + 1
    return kept_after(low)


def trim_model(
    model,
    statistics,
    *,
    criterion="relevance",
    ratio=None,
    min_relevance=None,
    target_macs=None,
    target_params=None,
    round_to=1,
    min_channels=1,
    exclude=(),
    criterion_options=None,
    compensate=True,
):
    """Score every channel group of ``model`` with ``criterion`` and rebuild it without the low scorers.

    ``statistics`` is a :class:`ChannelStatistics` collected on a representative set (see
    :func:`collect_statistics`). Give one policy: ``ratio``, ``min_relevance``, ``target_macs`` or
    ``target_params`` (the last two as fractions of this model's MACs or parameters). A model with nested
    models is trimmed as one flat graph. With ``compensate``, layers that lose input channels absorb their
    mean contribution into their bias (see :func:`rebuild`). Returns a :class:`TrimResult`; ``model`` itself
    is unchanged.
    """
    policy, value = check_policy(
        {"ratio": ratio, "min_relevance": min_relevance, "target_macs": target_macs, "target_params": target_params},
        round_to,
        min_channels,
    )
    score_fn = get_criterion(criterion)
    if has_nested_models(model):
        model = inline_nested(model)
    graph = ChannelGraph(model, exclude)
    groups = groups_of(graph)
    scores = {g.name: np.asarray(score_fn(g, statistics, model, **(criterion_options or {})), float) for g in groups}

    def surgery(kept):
        plan = SurgeryPlan()
        for group in groups:
            group.apply(plan, kept[group.name])
        return plan

    def build(kept):
        return rebuild(graph, surgery(kept), statistics if compensate else None)

    options = {"round_to": round_to, "min_channels": min_channels}
    if policy.startswith("target_"):
        metric = policy.removeprefix("target_")
        kept = _meet_budget(model, graph, scores, surgery, build, metric, value, options)
    else:
        kept = select_channels(scores, **{policy: value}, **options)
    return TrimResult(
        model=build(kept),
        kept=kept,
        scores=scores,
        channels={g.name: g.channels for g in groups},
        producers={g.name: tuple(m.layer for m in g.producers) for g in groups},
    )


def _meet_budget(model, graph, scores, surgery, build, metric, target, options):
    """Select channels for a MACs or parameter budget. The cost model's estimate is checked against the
    exact count of the rebuilt model, and the estimate's target tightened until the exact count fits; after
    four tries the last selection stands (the stage's report gives the exact MACs and parameters)."""
    from tfscissor.analysis import profile_model

    costs = CostModel(graph, profile_model(model))
    estimate_target = target
    for _ in range(4):
        kept = select_channels(
            scores, cost=lambda k: costs.fraction(surgery(k).removed, metric), target=estimate_target, **options
        )
        exact = costs.exact_fraction(build(kept), metric)
        if exact <= target + 1e-9:
            return kept
        estimate_target *= target / exact
    return kept


def trim_classifier(model, representative_images, *, batch_size=64, strategy=None, **options):
    """Collect activation statistics of ``model`` on ``representative_images``, then :func:`trim_model`.

    With a ``tf.distribute`` ``strategy`` the statistics are collected on its replicas and summed across them
    (see :func:`collect_statistics`); the trim itself is the same on every worker. Returns the
    :class:`TrimResult` with the statistics used, so they can be saved and inspected.
    """
    from tfscissor.trim.callback import collect_statistics

    if has_nested_models(model):
        model = inline_nested(model)
    taps = sorted(
        {tap.layer for group in groups_of(ChannelGraph(model, options.get("exclude", ()))) for tap in group.taps}
    )
    images = np.asarray(representative_images, np.float32)
    statistics = collect_statistics(model, images, taps, batch_size, strategy=strategy)
    return dataclasses.replace(trim_model(model, statistics, **options), statistics=statistics)


def tap_names(model, exclude=()):
    """The layers whose outputs the data-driven criteria read: give them to :func:`collect_statistics` or
    :class:`ActivationStatistics` to collect exactly what :func:`trim_model` needs."""
    if has_nested_models(model):
        model = inline_nested(model)
    return sorted({tap.layer for group in groups_of(ChannelGraph(model, exclude)) for tap in group.taps})
