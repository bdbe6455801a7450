"""Conversion to .tflite and full-int8 quantisation: post-training, or quantisation-aware training (QAT)."""

from tfscissor.quantize.ptq import QuantizeResult, quantize_int8, quantize_model, to_tflite
from tfscissor.quantize.qat import build_mirror, check_mirror, quantize_model_qat, register_mirror

__all__ = [
    "QuantizeResult",
    "build_mirror",
    "check_mirror",
    "quantize_int8",
    "quantize_model",
    "quantize_model_qat",
    "register_mirror",
    "to_tflite",
]
