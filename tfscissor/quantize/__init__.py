"""Conversion to .tflite and full-int8 quantisation: post-training, or quantisation-aware training (QAT)."""

from tfscissor.quantize.ptq import QuantizeResult, quantize_int8, quantize_model, to_tflite
from tfscissor.quantize.qat import build_mirror, check_mirror, quantize_model_qat, register_mirror
from tfscissor.quantize.stage import QAT_EPOCHS, QAT_LEARNING_RATE, run_quantize
from tfscissor.quantize.two_stage import QuantizedPipeline, quantize_pipeline, quantize_two_stage

__all__ = [
    "QAT_EPOCHS",
    "QAT_LEARNING_RATE",
    "QuantizeResult",
    "QuantizedPipeline",
    "build_mirror",
    "check_mirror",
    "quantize_int8",
    "quantize_model",
    "quantize_model_qat",
    "quantize_pipeline",
    "quantize_two_stage",
    "register_mirror",
    "run_quantize",
    "to_tflite",
]
