"""The trim stage as users run it: statistics on a representative set, trim, optional fine-tune, report."""

from dataclasses import dataclass

import numpy as np

from tfscissor.trim.policy import trim_classifier


@dataclass(frozen=True)
class TrimStageResult:
    model: object
    statistics: object
    report: dict  # JSON-able: per-layer channels, params, MACs and accuracy before and after


def trim_and_fine_tune(
    model,
    dataset,
    *,
    samples=512,
    fine_tune_epochs=0,
    learning_rate=5e-4,
    batch_size=64,
    seed=0,
    callbacks=(),
    **trim_options,
):
    """Trim ``model`` with statistics from ``samples`` training images of ``dataset``, then fine-tune the
    result for ``fine_tune_epochs`` on ``dataset.train``. ``trim_options`` go to :func:`trim_model`.
    """
    from tfscissor.analysis import profile_model
    from tfscissor.models.training import check_input, evaluate_classifier, train_classifier

    check_input(model, dataset.image_shape, dataset.spec)
    rng = np.random.default_rng(seed)
    representative = dataset.train.images[rng.permutation(len(dataset.train))[:samples]]
    result = trim_classifier(model, representative, batch_size=batch_size, **trim_options)
    trimmed = result.model
    accuracy_trimmed = evaluate_classifier(trimmed, dataset.val)
    if fine_tune_epochs:
        train_classifier(
            trimmed,
            dataset,
            epochs=fine_tune_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            callbacks=callbacks,
        )
    before, after = profile_model(model), profile_model(trimmed)
    report = {
        "layers": [
            {"layer": name, "before": result.channels[name], "after": len(kept)} for name, kept in result.kept.items()
        ],
        "params_before": before.params,
        "params_after": after.params,
        "macs_before": before.macs,
        "macs_after": after.macs,
        "accuracy_before": evaluate_classifier(model, dataset.val),
        "accuracy_trimmed": accuracy_trimmed,
        "accuracy_after": evaluate_classifier(trimmed, dataset.val) if fine_tune_epochs else accuracy_trimmed,
        "fine_tune_epochs": fine_tune_epochs,
    }
    return TrimStageResult(trimmed, result.statistics, report)
