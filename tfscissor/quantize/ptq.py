"""Conversion to ``.tflite``: float32, or full-int8 post-training quantisation.

Full int8 means int8 weights (per channel), activations, input and output, so every op is integer and the
model runs on TFLite Micro and maps to the Edge TPU. The path is the one measured to work with Keras 3
(../shared/ENVIRONMENT.md): export a SavedModel, then convert it with only the int8 builtin op set.
"""

import tempfile
from dataclasses import dataclass

import numpy as np

from tfscissor.deploy.litert import TFLiteModel
from tfscissor.errors import ModelError
from tfscissor.models.training import check_input, evaluate_classifier


def to_tflite(model, representative_images=None, num_samples=200, seed=0):
    """Return ``.tflite`` bytes for ``model``: float32 if ``representative_images`` is None, else full int8
    calibrated on ``num_samples`` of them (drawn with ``seed``; float or uint8 pixels in [0, 255], NHWC).
    """
    import tensorflow as tf

    # A batch of one in the signature makes every tensor's shape static: the Edge TPU compiler and delegate
    # refuse a graph with a dynamic (-1) batch dimension, and a device runs one image at a time anyway.
    signature = [tf.TensorSpec((1, *tensor.shape[1:]), tensor.dtype) for tensor in model.inputs]
    with tempfile.TemporaryDirectory() as export_dir:
        model.export(export_dir, verbose=False, input_signature=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(export_dir)
        if representative_images is not None:
            chosen = _calibration_images(model, representative_images, num_samples, seed)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None]] for image in chosen)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            return converter.convert()
        except Exception as err:  # the converter raises ConverterError, RuntimeError or ValueError alike
            raise ModelError(
                f"conversion of {model.name} to .tflite failed: {str(err).strip().splitlines()[0]}"
            ) from err


def quantize_int8(model, representative_images, num_samples=200, seed=0):
    """Full-int8 ``.tflite`` bytes for ``model`` (see :func:`to_tflite`)."""
    return to_tflite(model, representative_images, num_samples=num_samples, seed=seed)


def _calibration_images(model, images, num_samples, seed):
    images = np.asarray(images, dtype=np.float32)
    expected = tuple(model.input_shape[1:])
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ModelError(
            f"representative images of shape {images.shape[1:]} do not fit model input {expected}: "
            "use data of the size the model was trained on"
        )
    rng = np.random.default_rng(seed)
    return images[rng.permutation(len(images))[:num_samples]]


@dataclass(frozen=True)
class QuantizeResult:
    tflite: bytes
    float_accuracy: float
    int8_accuracy: float
    input_quantization: tuple  # (scale, zero_point): int8 = round(pixel / scale) + zero_point
    output_quantization: tuple
    method: str = "ptq"  # "ptq" (post-training) or "qat" (quantisation-aware training)
    # With QAT: the int8 accuracy post-training quantisation reaches on the same model (None when not
    # measured), the trained fake-quant model's accuracy before conversion, and the training history.
    ptq_int8_accuracy: float | None = None
    fake_quant_accuracy: float | None = None
    history: dict | None = None


def quantize_model(model, dataset, num_samples=200, seed=0):
    """Quantise ``model`` to full int8 calibrated on ``dataset.train``; measure float and int8 accuracy on
    ``dataset.val`` (the int8 model runs in LiteRT, as deployed).
    """

    check_input(model, dataset.image_shape, dataset.spec)
    tflite = quantize_int8(model, dataset.train.images, num_samples=num_samples, seed=seed)
    runner = TFLiteModel(tflite, name=f"{model.name} (int8)")
    return QuantizeResult(
        tflite=tflite,
        float_accuracy=evaluate_classifier(model, dataset.val),
        int8_accuracy=runner.accuracy(dataset.val.images, dataset.val.labels),
        input_quantization=runner.input_quantization,
        output_quantization=runner.output_quantization,
    )
