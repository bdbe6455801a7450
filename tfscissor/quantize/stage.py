"""The quantize stage as the CLI and recipes run it: one classifier post-training or with quantisation-aware
training, or a two-stage pipeline (cropper and classifier) post-training."""

from tfscissor.errors import UsageError
from tfscissor.quantize.ptq import quantize_model
from tfscissor.quantize.qat import quantize_model_qat
from tfscissor.quantize.two_stage import quantize_pipeline

__all__ = ["METHODS", "QAT_EPOCHS", "QAT_LEARNING_RATE", "run_quantize"]

METHODS = ("ptq", "qat")
# Quantisation-aware training's defaults: a short fine-tune at a tenth of training's rate, which moves a
# trained model to fit the int8 grid without forgetting (bench/quantize_qat.py).
QAT_EPOCHS = 3
QAT_LEARNING_RATE = 1e-4


def run_quantize(
    model,
    dataset,
    *,
    method="ptq",
    pipeline=None,
    samples=200,
    epochs=QAT_EPOCHS,
    learning_rate=QAT_LEARNING_RATE,
    seed=0,
    callbacks=(),
    evaluate_float=True,
):
    """Full-int8 ``model``, calibrated on ``samples`` train images of ``dataset``, with its accuracies on val.

    ``method``: ``ptq`` (post-training) or ``qat`` (``epochs`` of quantisation-aware training at
    ``learning_rate``). With a Keras :class:`~tfscissor.crop.TwoStage` ``pipeline`` (whose classifier is
    ``model``), both stages are quantised post-training and a
    :class:`~tfscissor.quantize.two_stage.QuantizedPipeline` is returned; otherwise a
    :class:`~tfscissor.quantize.QuantizeResult`. ``evaluate_float=False`` skips the float pipeline's evaluation
    (its ``float_report`` is then None) for a caller that measured it already.
    """
    if method not in METHODS:
        raise UsageError(f"unknown quantisation method {method!r}: use one of {', '.join(METHODS)}")
    if pipeline is not None:
        if method == "qat":
            # The classifier of a pipeline sees the int8 cropper's crops; training it on them is not built yet.
            raise UsageError(
                "quantisation-aware training quantises one classifier, not a two-stage pipeline: drop the "
                "cropper, or quantise both stages post-training"
            )
        return quantize_pipeline(pipeline, dataset, num_samples=samples, seed=seed, evaluate_float=evaluate_float)
    if method == "qat":
        return quantize_model_qat(
            model, dataset, epochs, learning_rate=learning_rate, num_samples=samples, seed=seed, callbacks=callbacks
        )
    return quantize_model(model, dataset, num_samples=samples, seed=seed)
