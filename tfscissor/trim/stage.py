"""The trim stage as users run it: statistics on a representative set, trim, fine-tune, in one or more rounds."""

from dataclasses import dataclass

import numpy as np

from tfscissor.progress import note, progress_bar
from tfscissor.trim.policy import check_policy, trim_classifier


@dataclass(frozen=True)
class TrimStageResult:
    model: object
    statistics: object  # those of the last round
    report: dict  # JSON-able: channels per group, params, MACs and accuracy before and after, and per round


def round_policy(policy, value, round_index, rounds, before, now):
    """The policy of round ``round_index`` (1-based) of ``rounds``, so that the rounds together reach ``value``.

    A ratio is split geometrically (each round removes the same fraction of what is left); a MACs or
    parameter target is approached geometrically from the original (``before``) given the cost ``now``;
    a threshold is applied as it is in every round.
    """
    if policy == "ratio":
        return {"ratio": 1.0 - (1.0 - value) ** (1.0 / rounds)}
    if policy == "min_relevance":
        return {"min_relevance": value}
    goal = value ** (round_index / rounds) * before / now
    return {policy: min(goal, 1.0)}


def trim_and_fine_tune(
    model,
    dataset,
    *,
    samples=512,
    rounds=1,
    fine_tune_epochs=0,
    learning_rate=5e-4,
    batch_size=64,
    seed=0,
    callbacks=(),
    progress=False,
    ratio=None,
    min_relevance=None,
    target_macs=None,
    target_params=None,
    strategy=None,
    **trim_options,
):
    """Trim ``model`` with statistics from ``samples`` training images of ``dataset``, then fine-tune the
    result for ``fine_tune_epochs`` on ``dataset.train``; with ``rounds`` > 1, repeat (re-measuring the
    statistics on the fine-tuned model each time) so that the rounds together meet the policy.

    Give one policy: ``ratio``, ``min_relevance``, ``target_macs`` or ``target_params`` (fractions of the
    original model). ``trim_options`` go to :func:`trim_model` (criterion, round_to, min_channels, exclude).
    With a ``tf.distribute`` ``strategy``, the statistics and the fine-tuning run on its replicas
    (``batch_size`` is the global batch); accuracy is measured on one device.
    """
    from tfscissor.analysis import profile_model
    from tfscissor.distribute import check_training
    from tfscissor.errors import UsageError
    from tfscissor.models.training import check_input, evaluate_classifier, train_classifier

    policy, value = check_policy(
        {"ratio": ratio, "min_relevance": min_relevance, "target_macs": target_macs, "target_params": target_params},
        trim_options.get("round_to", 1),
        trim_options.get("min_channels", 1),
    )
    if rounds < 1:
        raise UsageError(f"rounds must be >= 1, got {rounds}")
    check_input(model, dataset.image_shape, dataset.spec)
    if fine_tune_epochs:
        # Before the first round's statistics, not after them.
        check_training(strategy, batch_size, train_split=len(dataset.train), val_split=len(dataset.val))
    rng = np.random.default_rng(seed)
    representative = dataset.train.images[rng.permutation(len(dataset.train))[:samples]]
    original = profile_model(model)
    accuracy_before = evaluate_classifier(model, dataset.val)
    metric = {"target_macs": "macs", "target_params": "params"}.get(policy)
    current, now, first, result, history = model, original, None, None, []
    with progress_bar(total=rounds, desc="trim rounds", enabled=progress and rounds > 1, unit="round") as bar:
        for index in range(1, rounds + 1):
            before_cost = getattr(original, metric) if metric else 1
            now_cost = getattr(now, metric) if metric else 1
            options = round_policy(policy, value, index, rounds, before_cost, now_cost)
            result = trim_classifier(
                current, representative, batch_size=batch_size, strategy=strategy, **options, **trim_options
            )
            first = first or result
            current = result.model
            accuracy_trimmed = evaluate_classifier(current, dataset.val)
            if fine_tune_epochs:
                train_classifier(
                    current,
                    dataset,
                    epochs=fine_tune_epochs,
                    batch_size=batch_size,
                    learning_rate=learning_rate,
                    seed=seed + index - 1,
                    callbacks=callbacks,
                    strategy=strategy,
                )
            now = profile_model(current)
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
            bar.update(1)
            if rounds > 1:
                note(
                    f"round {index}/{rounds}: MACs {now.macs / original.macs:.0%} of the original, accuracy "
                    f"{accuracy_trimmed:.4f} after trimming, {accuracy_after:.4f} after fine-tuning",
                    progress,
                )
    report = {
        "layers": [
            {
                "layer": name,
                "producers": len(first.producers[name]),
                "before": first.channels[name],
                "after": len(result.kept[name]) if name in result.kept else first.channels[name],
            }
            for name in first.channels
        ],
        "policy": {policy: value},
        "criterion": trim_options.get("criterion", "relevance"),
        "rounds": history,
        "params_before": original.params,
        "params_after": history[-1]["params"],
        "macs_before": original.macs,
        "macs_after": history[-1]["macs"],
        "accuracy_before": accuracy_before,
        "accuracy_trimmed": history[0]["accuracy_trimmed"],
        "accuracy_after": history[-1]["accuracy_after"],
        "fine_tune_epochs": fine_tune_epochs,
    }
    return TrimStageResult(current, result.statistics, report)
