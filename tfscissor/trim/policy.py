"""Which channels to keep: a threshold on the score, a fraction of channels, or a MACs or parameter budget."""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from tfscissor.errors import UsageError
from tfscissor.models.graph import has_nested_models, inline_nested
from tfscissor.trim.budget import CostModel
from tfscissor.trim.criteria import get_criterion, measures_loss
from tfscissor.trim.defaults import ALLOCATIONS, check_policy, layer_limit
from tfscissor.trim.dependency import ChannelGraph
from tfscissor.trim.groups import groups_of
from tfscissor.trim.sensitivity import measure_sensitivity, sensitivity_scores
from tfscissor.trim.surgery import SurgeryPlan, rebuild


@dataclass(frozen=True)
class TrimResult:
    """The trimmed model and, per group (keyed by its name), the channels kept and every channel's score."""

    model: object
    kept: dict = field(default_factory=dict)  # group -> sorted indices of the kept channels
    scores: dict = field(default_factory=dict)  # group -> score per original channel
    channels: dict = field(default_factory=dict)  # group -> original channel count
    producers: dict = field(default_factory=dict)  # group -> the layers that make its channels
    statistics: object = None  # the ChannelStatistics that scored the channels, when collected here


def check_limits(max_layer_ratio, allocation):
    """``max_layer_ratio`` is one number in (0, 1], or a mapping group -> a number in [0, 1]."""
    if isinstance(max_layer_ratio, dict):
        bad = {name: ratio for name, ratio in max_layer_ratio.items() if not 0.0 <= ratio <= 1.0}
    else:
        bad = {} if 0.0 < max_layer_ratio <= 1.0 else {"": max_layer_ratio}
    if bad:
        raise UsageError(
            f"max_layer_ratio is the largest fraction one layer may lose: give (0, 1], got {next(iter(bad.values()))}"
        )
    if allocation not in ALLOCATIONS:
        raise UsageError(f"unknown allocation {allocation!r}: use one of {', '.join(ALLOCATIONS)}")


def _top(scores, count):
    # Stable: among equal scores the lower channel index wins, so results are reproducible.
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:count])


def _finalise(count, channels, round_to, min_channels):
    count = max(count, min(min_channels, channels))
    return min(channels, -(-count // round_to) * round_to)


def _floors(scores, min_channels, max_layer_ratio):
    """The fewest channels each group keeps: ``min_channels``, and what ``max_layer_ratio`` (one number, or
    group -> number) leaves."""
    return {
        name: min(len(s), max(min_channels, int(np.ceil((1.0 - layer_limit(max_layer_ratio, name)) * len(s) - 1e-9))))
        for name, s in scores.items()
    }


def _remove_lowest(scores, to_remove, floors):
    """Channel counts per group after removing the ``to_remove`` lowest scores across every group, no group
    going below its floor."""
    counts = {name: len(s) for name, s in scores.items()}
    ranked = sorted((float(v), name) for name, s in scores.items() for v in s)
    for _, name in ranked:
        if to_remove == 0:
            break
        if counts[name] > floors[name]:
            counts[name] -= 1
            to_remove -= 1
    return counts


def select_channels(
    scores,
    *,
    ratio=None,
    min_relevance=None,
    round_to=1,
    min_channels=1,
    max_layer_ratio=1.0,
    cost=None,
    target=None,
    allow_short=False,
):
    """Map group -> kept channel indices, from group -> per-channel scores.

    ``min_relevance``: drop every channel whose score is at or below it (0 drops exactly the dead channels
    under the relevance criterion). ``ratio``: drop that fraction of all channels, lowest scores first across
    every group. ``cost`` and ``target``: drop the lowest-scoring channels until ``cost(kept)`` (a fraction of
    the original) is at most ``target`` (with ``allow_short``, as close as the limits allow; a costly last
    channel's overshoot is then spent again, see :func:`_land_near`). Each group keeps at least ``min_channels``, at most
    ``max_layer_ratio`` of its channels go (except under ``min_relevance``, which removes exactly what scores
    at or below it), and a multiple of ``round_to`` stays (rounding up, so fewer channels may be removed than
    asked).
    """
    floors = _floors(scores, min_channels, max_layer_ratio)
    if cost is not None:
        return _select_for_budget(scores, cost, target, round_to, min_channels, floors, allow_short)
    check_policy({"ratio": ratio, "min_relevance": min_relevance}, round_to, min_channels)
    if min_relevance is not None:
        counts = {name: int(np.sum(s > min_relevance)) for name, s in scores.items()}
    else:
        total = sum(len(s) for s in scores.values())
        # The epsilon keeps a ratio computed from counts (ratio x total = a whole number) from flooring one short.
        counts = _remove_lowest(scores, int(np.floor(ratio * total + 1e-9)), floors)
    return _keep(scores, counts, round_to, min_channels)


def _keep(scores, counts, round_to, min_channels):
    return {name: _top(s, _finalise(counts[name], len(s), round_to, min_channels)) for name, s in scores.items()}


def _select_for_budget(scores, cost, target, round_to, min_channels, floors, allow_short=False):
    """The fewest lowest-scoring channels to remove so that ``cost(kept) <= target``: a bisection, as the cost
    only falls as more channels go, then the last removal landed near the target (:func:`_land_near`). A target
    the limits cannot reach is refused, or with ``allow_short`` approached as far as they allow."""

    def kept_after(to_remove):
        return _keep(scores, _remove_lowest(scores, to_remove, floors), round_to, min_channels)

    low, high = 0, sum(len(s) for s in scores.values())
    if cost(kept_after(high)) > target:
        if allow_short:
            return kept_after(high)
        raise unreachable(target, cost(kept_after(high)))
    while low < high:
        middle = (low + high) // 2
        if cost(kept_after(middle)) <= target:
            high = middle
        else:
            low = middle + 1
    if low == 0:
        return kept_after(0)
    return _land_near(scores, _remove_lowest(scores, low - 1, floors), cost, target, floors, round_to, min_channels)


# How far under the budget the last removal may land before a cheaper one is looked for.
BUDGET_TOLERANCE = 0.01


def _land_near(scores, counts, cost, target, floors, round_to, min_channels):
    """The last removal of a budgeted trim: ``counts`` is one channel short of the budget. The next channel in
    score order can be a costly one (a channel of a wide, high-resolution layer frees several percent of the
    MACs at once) and overshoot it; then the lowest-scored next channel of another group that meets the budget
    within :data:`BUDGET_TOLERANCE` goes instead. Where none does, the costly one goes and the budget it leaves
    unspent is given back (:func:`_give_back`), so criteria are compared at the cost they were asked for."""
    options = []
    for name, values in scores.items():
        if counts[name] <= floors[name]:
            continue
        fewer = {**counts, name: counts[name] - 1}
        reached = cost(_keep(scores, fewer, round_to, min_channels))
        if reached <= target:
            next_score = np.sort(values)[len(values) - counts[name]]
            options.append((reached < target - BUDGET_TOLERANCE, float(next_score), name, fewer))
    short, _, _, chosen = min(options, key=lambda option: option[:3])
    if short:
        chosen = _give_back(scores, chosen, cost, target, round_to, min_channels)
    return _keep(scores, chosen, round_to, min_channels)


def _give_back(scores, counts, cost, target, round_to, min_channels):
    """``counts`` with removed channels restored while the budget holds, the best-scored that fits first: after
    a costly last channel, what it overshot goes to the channels the trim valued most (a greedy fill of the
    slack, as for a knapsack). Each group gives back its best removed channel, the last it lost."""
    counts = dict(counts)
    best_first = {name: np.sort(values)[::-1] for name, values in scores.items()}
    candidates = [name for name, values in scores.items() if counts[name] < len(values)]
    while candidates:
        fits = []
        for name in candidates:
            more = {**counts, name: counts[name] + 1}
            if cost(_keep(scores, more, round_to, min_channels)) <= target:
                fits.append((float(best_first[name][counts[name]]), name))
        if not fits:
            break
        best = max(fits)[1]
        counts[best] += 1
        # Restoring only adds cost: a group whose channel no longer fits never will again.
        candidates = [name for _, name in fits if counts[name] < len(scores[name])]
    return counts


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
    max_layer_ratio=1.0,
    protect_stem=False,
    exclude=(),
    allocation="global",
    calibration=None,
    criterion_options=None,
    compensate=True,
    allow_short=False,
):
    """Score every channel group of ``model`` with ``criterion`` and rebuild it without the low scorers.

    ``statistics`` is a :class:`ChannelStatistics` collected on a representative set (see
    :func:`collect_statistics`; the default ``taylor`` criterion also needs their saliency, which
    :func:`trim_classifier` collects). Give one policy: ``ratio``, ``min_relevance``, ``target_macs`` or
    ``target_params`` (the last two as fractions of this model's MACs or parameters).

    Limits: no group loses more than ``max_layer_ratio`` of its channels (one number, or group -> number);
    with ``protect_stem`` the channels made by the layers that read the model's input (and everything tied to
    them) stay, as ``exclude``d layers' do. The classifier's outputs always stay. ``allocation="sensitivity"`` measures, on
    ``calibration`` (images, labels or None), each group's loss when a quarter, half and three quarters of
    its lowest-scored channels go (those its limit allows), and spends the budget where the measured loss
    grows least; ``"global"`` ranks all channels by score alone. A MACs or parameter target the limits cannot
    reach is refused, or with ``allow_short`` (a step of a longer trim) approached as far as they allow.

    This is the surgery alone and does what it is told: the measured defaults that users get (the
    ``taylor`` criterion, a layer limit, the stem protected, batch norms re-estimated, several steps) are
    :func:`tfscissor.trim.stage.run_trim`'s. A model with nested models is trimmed as one flat
    graph. With ``compensate``, layers that lose input channels absorb their mean contribution into their bias
    (see :func:`rebuild`). Returns a :class:`TrimResult`; ``model`` itself is unchanged.
    """
    policy, value = check_policy(
        {"ratio": ratio, "min_relevance": min_relevance, "target_macs": target_macs, "target_params": target_params},
        round_to,
        min_channels,
    )
    check_limits(max_layer_ratio, allocation)
    score_fn = get_criterion(criterion)
    if allocation == "sensitivity" and calibration is None:
        raise UsageError("allocation='sensitivity' measures losses: give calibration=(images, labels)")
    if has_nested_models(model):
        model = inline_nested(model)
    graph = protected_graph(model, exclude, protect_stem)
    groups = groups_of(graph)
    scores = {g.name: np.asarray(score_fn(g, statistics, model, **(criterion_options or {})), float) for g in groups}

    def surgery(kept):
        return SurgeryPlan.keeping(groups, kept)

    def build(kept):
        return rebuild(graph, surgery(kept), statistics if compensate else None)

    selection_scores = scores
    if allocation == "sensitivity":
        curves = measure_sensitivity(groups, scores, build, *calibration, max_layer_ratio=max_layer_ratio)
        selection_scores = sensitivity_scores(scores, curves)
    options = {"round_to": round_to, "min_channels": min_channels, "max_layer_ratio": max_layer_ratio}
    if policy.startswith("target_"):
        from tfscissor.analysis import profile_model

        metric = policy.removeprefix("target_")
        costs = CostModel(graph, profile_model(model))
        # Under a budget a channel scored in loss is worth its score per unit of the budget it frees: one of a
        # wide, high-resolution layer frees many MACs, one of a narrow late layer few. Heuristic scores
        # (normalised per layer) have no unit to divide, so they rank as they are.
        if allocation == "sensitivity" or measures_loss(criterion):
            selection_scores = {
                group.name: selection_scores[group.name] / max(1.0 - costs.fraction(group.roots[:1], metric), 1e-12)
                for group in groups
            }
        counts = _meet_budget(
            costs, selection_scores, surgery, build, metric, value, {**options, "allow_short": allow_short}
        )
    else:
        counts = select_channels(selection_scores, **{policy: value}, **options)
    # Which channels of a group go is always the criterion's choice; the allocation only sets how many.
    kept = {name: _top(scores[name], len(counts[name])) for name in scores}
    return TrimResult(
        model=build(kept),
        kept=kept,
        scores=scores,
        channels={g.name: g.channels for g in groups},
        producers={g.name: tuple(m.layer for m in g.producers) for g in groups},
    )


def unreachable(target, reached):
    return UsageError(
        f"the budget {target:.3f} cannot be met: removing all that the limits allow leaves {reached:.3f} of the "
        "original; raise the target, raise max_layer_ratio, trim the stem too (--no-protect-stem), or lower "
        "min_channels / round_to"
    )


def check_reachable(
    model, metric, target, *, exclude=(), protect_stem=False, max_layer_ratio=1.0, round_to=1, min_channels=1, **_
):
    """Refuse a ``metric`` ("macs" or "params") ``target`` that no trim within the limits reaches, before any
    statistics are collected."""
    from tfscissor.analysis import profile_model

    if has_nested_models(model):
        model = inline_nested(model)
    graph = protected_graph(model, exclude, protect_stem)
    groups = groups_of(graph)
    empty = {group.name: np.zeros(group.channels) for group in groups}
    kept = _keep(empty, _floors(empty, min_channels, max_layer_ratio), round_to, min_channels)
    reached = CostModel(graph, profile_model(model)).fraction(SurgeryPlan.keeping(groups, kept).removed, metric)
    if reached > target:
        raise unreachable(target, reached)


def protected_graph(model, exclude=(), protect_stem=False):
    """The channel graph of ``model`` with the ``exclude``d layers' channels pinned and, with
    ``protect_stem``, those of the layers that read the model's input: the stem sees raw pixels, and every
    later layer (in a ResNet, every block of the first stage, through the residual stream) builds on it."""
    graph = ChannelGraph(model, exclude)
    if protect_stem:
        for node in graph.stem():
            for elements in node.outputs:
                graph.freeze(elements)
    return graph


def _meet_budget(costs, scores, surgery, build, metric, target, options):
    """Select channels for a MACs or parameter budget. The cost model's estimate is checked against the
    exact count of the rebuilt model, and the estimate's target tightened until the exact count fits; after
    four tries the last selection stands (the stage's report gives the exact MACs and parameters)."""
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


def trim_classifier(
    model, representative_images, labels=None, *, batch_size=64, strategy=None, recalibrate=False, **options
):
    """Collect the evidence ``options["criterion"]`` needs on ``representative_images``, then
    :func:`trim_model`, then (with ``recalibrate``) re-estimate the batch norms' statistics of the trimmed
    model on the same images.

    Activation statistics are always collected (the surgery compensates with their means); criteria that
    read saliency (the default ``taylor``) also get a gradient pass with ``labels`` (the images' classes;
    None uses the model's own predictions). With a ``tf.distribute`` ``strategy`` the activation statistics
    are collected on its replicas and summed across them (see :func:`collect_statistics`); the gradient pass
    and the trim itself run on one device. Returns the :class:`TrimResult` with the statistics used, so they
    can be saved and inspected.
    """
    from tfscissor.trim.callback import collect_statistics
    from tfscissor.trim.saliency import collect_saliency

    if has_nested_models(model):
        model = inline_nested(model)
    graph = protected_graph(model, options.get("exclude", ()), options.get("protect_stem", False))
    groups = groups_of(graph)
    taps = sorted({tap.layer for group in groups for tap in group.taps})
    images = np.asarray(representative_images, np.float32)
    if not len(images):
        raise UsageError("no representative images: the statistics need at least one")
    statistics = collect_statistics(model, images, taps, batch_size, strategy=strategy)
    if measures_loss(options.get("criterion", "relevance")):
        statistics = statistics.with_saliency(collect_saliency(graph, groups, statistics, images, labels, batch_size))
    if options.get("allocation") == "sensitivity":
        options = {**options, "calibration": (images, labels)}
    result = trim_model(model, statistics, **options)
    trimmed = recalibrate_batch_norm(result.model, images, batch_size) if recalibrate else result.model
    return dataclasses.replace(result, model=trimmed, statistics=statistics)


def recalibrate_batch_norm(model, images, batch_size=64, names=None):
    """Re-estimate every batch norm's moving mean and variance from ``images`` (only those called ``names``,
    if given), in place, and return the model.

    Trimming changes what each batch norm sees (fewer input channels, means folded into biases): statistics
    measured on the trimmed model itself fix the shift at once, which is much of what a first epoch of
    fine-tuning would otherwise spend (Li et al., EagleEye, 2020). Each batch norm ends with the average of
    the batches' statistics; dropout is held off meanwhile so it does not inflate the variances.
    """
    import keras

    every = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    norms = [layer for layer in every if names is None or layer.name in names]
    others = [layer for layer in every if layer not in norms]
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    if not norms:
        return model
    saved = [(layer, layer.momentum, layer.trainable) for layer in every]
    rates = [(layer, layer.rate) for layer in dropouts]
    try:
        for layer in dropouts:
            layer.rate = 0.0
        for layer in norms:
            layer.trainable = True  # a frozen batch norm runs in inference mode even when training
        for layer in others:
            layer.trainable = False  # inference mode: they keep their statistics and normalise by them
        for index, start in enumerate(range(0, len(images), batch_size)):
            for layer in norms:
                # moving = moving * momentum + batch * (1 - momentum): a running average over the batches.
                layer.momentum = index / (index + 1)
            model(np.asarray(images[start : start + batch_size], np.float32), training=True)
    finally:
        for layer, momentum, trainable in saved:
            layer.momentum, layer.trainable = momentum, trainable
        for layer, rate in rates:
            layer.rate = rate
    return model


def tap_names(model, exclude=()):
    """The layers whose outputs the data-driven criteria read: give them to :func:`collect_statistics` or
    :class:`ActivationStatistics` to collect exactly what :func:`trim_model` needs."""
    if has_nested_models(model):
        model = inline_nested(model)
    # Every group's taps, the stem's too: statistics collected here serve any protect_stem.
    return sorted({tap.layer for group in groups_of(ChannelGraph(model, exclude)) for tap in group.taps})
