"""The trim stage as users run it: statistics on a representative set, trim, fine-tune, in one or more rounds."""

import inspect
from dataclasses import dataclass

import numpy as np

from tfscissor.errors import UsageError
from tfscissor.models.distribute import check_training
from tfscissor.models.training import check_input, evaluate_classifier, steps_in_epoch, train_classifier
from tfscissor.progress import note, progress_bar
from tfscissor.trim.criteria import DEFAULT_CRITERION, get_criterion
from tfscissor.trim.defaults import FINE_TUNE_LR, MAX_LAYER_RATIO, STEPS, check_policy
from tfscissor.trim.policy import check_limits, check_reachable, recalibrate_batch_norm, trim_classifier
from tfscissor.trim.sensitivity import classification_loss, group_losses


@dataclass(frozen=True)
class TrimStageResult:
    model: object
    statistics: object  # those of the last round
    report: dict  # JSON-able: channels per group, params, MACs and accuracy before and after, and per round


def step_policy(policy, value, index, steps, before, now):
    """The policy of surgery ``index`` (1-based) of ``steps``, so that the surgeries together reach ``value``.

    Every policy but a threshold is approached geometrically from the original (``before``) given what is
    left ``now``: for a ratio both are counts of trimmable channels (each step removes the same fraction of
    what is left, counted from the original so that rounding in one step is made up in the next), for a MACs
    or parameter target the costs. A threshold is applied as it is in every step.
    """
    if policy == "min_relevance":
        return {"min_relevance": value}
    if policy == "ratio":
        left = before * (1.0 - value) ** (index / steps)
        return {"ratio": max(0.0, 1.0 - left / now)}
    goal = value ** (index / steps) * before / now
    return {policy: min(goal, 1.0)}


def run_trim(
    model,
    dataset,
    *,
    samples=512,
    rounds=1,
    steps=STEPS,
    fine_tune_epochs=0,
    learning_rate=FINE_TUNE_LR,
    batch_size=64,
    seed=0,
    distill=True,
    reconstruct=None,
    callbacks=(),
    progress=False,
    ratio=None,
    min_relevance=None,
    target_macs=None,
    target_params=None,
    strategy=None,
    **trim_options,
):
    """Trim ``model`` with evidence from ``samples`` training images of ``dataset``, then fine-tune the result
    for ``fine_tune_epochs`` on ``dataset.train``; with ``rounds`` > 1, repeat (re-measuring on the
    fine-tuned model each time) so that the rounds together meet the policy.

    Within a round the surgery goes in ``steps`` smaller steps, each re-measuring statistics and saliency and
    re-estimating batch norms on the partly trimmed model (no training between them). ``max_layer_ratio``
    (see :func:`trim_model`) holds for the whole trim, counted on the original model. With ``distill``,
    fine-tuning learns from the untrimmed model's outputs as well as the labels
    (:func:`tfscissor.models.training.distillation_loss`); batch norms that the fine-tune was too short to
    settle are re-estimated after it (:func:`stale_batch_norms`). With ``reconstruct``, each round's surgery
    ends with a least-squares refit of the layers that lost input channels, against the round's untrimmed model
    on the representative images (:func:`tfscissor.trim.reconstruction.reconstruct`); None (the default)
    refits only where no fine-tuning follows. The steps then choose the channels, and the refit sets the weights
    of the round's model from its starting model (batch-norm statistics included), replacing the steps' mean
    replacement and re-estimated statistics.
    ``seed`` picks the representative images, the fine-tune's shuffling and any seeded criterion's ranking
    (``random``).

    Give one policy: ``ratio``, ``min_relevance``, ``target_macs`` or ``target_params`` (fractions of the
    original model). ``trim_options`` go to :func:`trim_model` (criterion, round_to, min_channels,
    max_layer_ratio, protect_stem, exclude, allocation, criterion_options). With a ``tf.distribute``
    ``strategy``, the activation statistics and the fine-tuning run on its replicas (``batch_size`` is the
    global batch); accuracy is measured on one device.
    """
    from tfscissor.analysis import profile_model

    if samples < 1:
        raise UsageError(f"samples is the number of representative images: give at least 1, got {samples}")
    policy, value = check_policy(
        {"ratio": ratio, "min_relevance": min_relevance, "target_macs": target_macs, "target_params": target_params},
        trim_options.get("round_to", 1),
        trim_options.get("min_channels", 1),
    )
    criterion = trim_options.setdefault("criterion", DEFAULT_CRITERION)
    trim_options.setdefault("protect_stem", True)
    max_layer_ratio = trim_options.pop("max_layer_ratio", MAX_LAYER_RATIO)
    check_limits(max_layer_ratio, trim_options.get("allocation", "global"))
    refit = not fine_tune_epochs if reconstruct is None else bool(reconstruct)
    if rounds < 1 or steps < 1:
        raise UsageError(f"rounds and steps must be >= 1, got {rounds} and {steps}")
    if policy == "min_relevance":
        steps = 1  # a threshold removes what scores below it; a second step would only re-apply it
    check_input(model, dataset.image_shape, dataset.spec)
    if fine_tune_epochs:
        # Before the first round's statistics, not after them.
        check_training(strategy, batch_size, train_split=len(dataset.train), val_split=len(dataset.val))
    trim_options["criterion_options"] = {**_seeded(criterion, seed), **(trim_options.get("criterion_options") or {})}
    surgeries = rounds * steps
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(dataset.train))[:samples]
    representative, labels = dataset.train.images[chosen], dataset.train.labels[chosen]
    metric = {"target_macs": "macs", "target_params": "params"}.get(policy)
    if metric:
        # The whole trim's limits, checked on the cost model before any statistics: the steps then take what
        # each can within its share.
        check_reachable(model, metric, value, max_layer_ratio=max_layer_ratio, **trim_options)
    original = profile_model(model)
    channels = _group_channels(model, trim_options)
    # The fewest channels each group may keep, counted on the original: a later step can make up for an
    # earlier one that took less, but no group ends below its limit.
    floors = {name: int(np.ceil((1.0 - max_layer_ratio) * count - 1e-9)) for name, count in channels.items()}
    accuracy_before = evaluate_classifier(model, dataset.val)
    current, now, history = model, original, []
    kept, first_statistics, result = None, None, None
    with progress_bar(total=surgeries, desc="trim", enabled=progress, unit="step") as bar:
        for index in range(1, rounds + 1):
            start, round_kept, round_statistics = current, None, None
            for step in range(1, steps + 1):
                # Group names are their first producer's and survive a rebuild, so what is left is read off
                # the composed selection instead of a new graph of the trimmed model.
                now_channels = channels if kept is None else {name: len(k) for name, (k, _, _) in kept.items()}
                if metric:
                    before_cost, now_cost = getattr(original, metric), getattr(now, metric)
                else:
                    before_cost, now_cost = sum(channels.values()), sum(now_channels.values())
                options = step_policy(policy, value, (index - 1) * steps + step, surgeries, before_cost, now_cost)
                result = trim_classifier(
                    current,
                    representative,
                    labels,
                    batch_size=batch_size,
                    strategy=strategy,
                    max_layer_ratio={
                        name: max(0.0, 1.0 - floors.get(name, count) / count) for name, count in now_channels.items()
                    },
                    recalibrate=True,
                    allow_short=True,
                    **options,
                    **trim_options,
                )
                first_statistics = first_statistics or result.statistics
                round_statistics = round_statistics or result.statistics
                kept, round_kept = _compose(kept, result), _compose(round_kept, result)
                current, now = result.model, profile_model(result.model)
                bar.update(1)
                note(
                    f"trim step {(index - 1) * steps + step}/{surgeries}: MACs {now.macs / original.macs:.1%}, "
                    f"params {now.params / original.params:.1%} of the original",
                    progress,
                )
            if refit:
                current = _reconstruct(start, round_kept, representative, round_statistics, trim_options)
                now = profile_model(current)
                note(f"round {index}/{rounds}: refit the layers that lost input channels by least squares", progress)
            accuracy_trimmed = evaluate_classifier(current, dataset.val)
            if fine_tune_epochs:
                curves = train_classifier(
                    current,
                    dataset,
                    epochs=fine_tune_epochs,
                    batch_size=batch_size,
                    learning_rate=learning_rate,
                    seed=seed + index - 1,
                    callbacks=callbacks,
                    strategy=strategy,
                    teacher=model if distill else None,
                )
                # The epochs that ran: a user's callback may stop the fine-tune early.
                stale = stale_batch_norms(current, len(curves["loss"]) * steps_in_epoch(dataset.train, batch_size))
                if stale:
                    recalibrate_batch_norm(current, representative, batch_size, names=stale)
                    note(f"re-estimated {len(stale)} batch norms the fine-tune was too short to move", progress)
            accuracy_after = evaluate_classifier(current, dataset.val) if fine_tune_epochs else accuracy_trimmed
            history.append(
                {
                    "round": index,
                    "macs": now.macs,
                    "params": now.params,
                    "accuracy_trimmed": accuracy_trimmed,
                    "accuracy_after": accuracy_after,
                }
            )
            if rounds > 1:
                note(
                    f"round {index}/{rounds}: MACs {now.macs / original.macs:.0%} of the original, accuracy "
                    f"{accuracy_trimmed:.4f} after trimming, {accuracy_after:.4f} after fine-tuning",
                    progress,
                )
    report = {
        "layers": [
            {"layer": name, "producers": len(producers), "before": channels, "after": len(kept[name][0])}
            for name, (_, channels, producers) in kept.items()
        ],
        "policy": {policy: value},
        "criterion": criterion,
        "steps": steps,
        "rounds": history,
        "distill": bool(distill and fine_tune_epochs),
        "reconstruct": refit,
        "seed": seed,
        "params_before": original.params,
        "params_after": history[-1]["params"],
        "macs_before": original.macs,
        "macs_after": history[-1]["macs"],
        "accuracy_before": accuracy_before,
        "accuracy_trimmed": history[0]["accuracy_trimmed"],
        "accuracy_after": history[-1]["accuracy_after"],
        "fine_tune_epochs": fine_tune_epochs,
    }
    report["chance"] = chance = 1.0 / dataset.num_classes
    # A model no better than chance on this data has nothing to lose: that is the data's or the model's
    # problem (another class order, another pixel range), which the report's chance lets a caller say.
    if accuracy_before > chance and report["accuracy_trimmed"] - chance < COLLAPSE * (accuracy_before - chance):
        report["costliest_groups"] = costliest_groups(
            model,
            first_statistics,
            {name: k for name, (k, _, _) in kept.items()},
            representative,
            labels,
            trim_options,
        )
    return TrimStageResult(current, result.statistics, report)


# A batch norm's moving statistics keep momentum ** steps of what they held before a fine-tune of that many
# steps. Above this share they still describe the model before the fine-tune: with Keras's default momentum
# (0.99), a fine-tune of 100 steps leaves 37% (a small model checked that way fell from 1.0 to 0.70 after its
# fine-tune, and re-estimating gave it all back). tfscissor's own builders (momentum 0.9) settle within 44 steps.
STALE_STATISTICS = 0.01


def stale_batch_norms(model, steps):
    """The names of ``model``'s batch norms whose moving statistics ``steps`` training steps have not settled.

    A frozen batch norm is never stale: it runs in inference mode while training too, so the fine-tune
    learned around its statistics.
    """
    import keras

    return [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.trainable
        and layer.momentum**steps > STALE_STATISTICS
    ]


# Surgery alone keeping less than this fraction of the accuracy above chance is a collapse: the report names
# the groups that cost most, so the user knows what to protect or exclude. Above chance, because a 4-class
# model at 0.55 that falls to 0.28 has lost everything it learned, not half of it.
COLLAPSE = 0.5


def _seeded(criterion, seed):
    """``{"seed": seed}`` for criteria that take a seed (``random``), so ``--seed`` repeats them too."""
    return {"seed": seed} if "seed" in inspect.signature(get_criterion(criterion)).parameters else {}


def _reconstruct(model, kept, images, statistics, trim_options):
    from tfscissor.trim.reconstruction import reconstruct

    return reconstruct(
        model,
        {name: indices for name, (indices, _, _) in kept.items()},
        images,
        statistics,
        exclude=trim_options.get("exclude", ()),
        protect_stem=trim_options["protect_stem"],
    )


def _group_channels(model, trim_options):
    """Group name -> channels, for every group of ``model`` the trim may remove channels from."""
    from tfscissor.models.graph import has_nested_models, inline_nested
    from tfscissor.trim.groups import groups_of
    from tfscissor.trim.policy import protected_graph

    if has_nested_models(model):
        model = inline_nested(model)
    graph = protected_graph(model, trim_options.get("exclude", ()), trim_options["protect_stem"])
    return {group.name: group.channels for group in groups_of(graph)}


def _compose(kept, result):
    """Group -> (kept indices of the original channels, original count, producers), after ``result``'s
    surgery on a model that ``kept`` already describes (group names are the layers' and survive a rebuild)."""
    composed = {}
    for name, now_kept in result.kept.items():
        if kept is None:
            composed[name] = (np.asarray(now_kept), result.channels[name], result.producers[name])
        else:
            before, channels, producers = kept[name]
            composed[name] = (before[np.asarray(now_kept)], channels, producers)
    return composed


def costliest_groups(model, statistics, kept, images, labels, trim_options, count=3):
    """The ``count`` groups whose removal alone (as trimmed, from the untrimmed ``model``) raises the loss on
    ``images`` most: [(group, loss increase)], costliest first."""
    from tfscissor.trim.groups import groups_of
    from tfscissor.trim.policy import protected_graph
    from tfscissor.trim.surgery import SurgeryPlan, rebuild

    graph = protected_graph(model, trim_options.get("exclude", ()), trim_options["protect_stem"])
    groups = [group for group in groups_of(graph) if len(kept.get(group.name, ())) < group.channels]

    def build(chosen):
        return rebuild(graph, SurgeryPlan.keeping(groups, chosen), statistics)

    base = classification_loss(model, images, labels)
    losses = group_losses(groups, build, images, labels, {group.name: kept[group.name] for group in groups})
    ranked = sorted(((loss - base, name) for name, loss in losses.items()), reverse=True)
    return [(name, float(increase)) for increase, name in ranked[:count]]
