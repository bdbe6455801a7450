"""Both models of Smart Scissor's two-stage pipeline to full int8: the cropper calibrated on whole images, the
classifier on the crops the cropper gives them, and the pipeline evaluated before and after as deployed."""

from dataclasses import dataclass

import numpy as np

from tfscissor.crop.pipeline import TwoStage
from tfscissor.deploy.litert import TFLiteModel
from tfscissor.quantize.ptq import quantize_int8

__all__ = ["QuantizedPipeline", "quantize_pipeline", "quantize_two_stage"]


def quantize_two_stage(pipeline, dataset, num_samples=200, seed=0):
    """Both models of a Keras :class:`TwoStage` as full-int8 ``.tflite`` bytes: ``(cropper, classifier)``.

    The cropper is calibrated on whole train images, the classifier on the crops the cropper gives them.
    """
    rng = np.random.default_rng(seed)
    chosen = dataset.train.images[rng.permutation(len(dataset.train))[:num_samples]]
    crops, _ = pipeline.crops(chosen)
    cropper = quantize_int8(pipeline.cropper, chosen, num_samples=num_samples, seed=seed)
    classifier = quantize_int8(pipeline.classifier, crops.images, num_samples=num_samples, seed=seed)
    return cropper, classifier


@dataclass(frozen=True, eq=False)
class QuantizedPipeline:
    """Both stages as full-int8 ``.tflite`` bytes, with the int8 (and, when asked, the float) pipeline's
    report on val."""

    cropper: bytes
    classifier: bytes
    float_report: dict | None
    int8_report: dict


def quantize_pipeline(pipeline, dataset, num_samples=200, seed=0, evaluate_float=True):
    """Quantise a Keras :class:`TwoStage` and evaluate it after, as deployed (LiteRT), and with
    ``evaluate_float`` before (a caller that has the float pipeline's report already skips that pass)."""
    cropper, classifier = quantize_two_stage(pipeline, dataset, num_samples=num_samples, seed=seed)
    names = tuple(f"{name} (int8)" for name in pipeline.names)
    deployed = TwoStage(
        TFLiteModel(cropper, name=names[0]), TFLiteModel(classifier, name=names[1]), pipeline.policy, names
    )
    before = pipeline.evaluate(dataset.val) if evaluate_float else None
    return QuantizedPipeline(cropper, classifier, before, deployed.evaluate(dataset.val))
