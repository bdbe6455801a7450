"""Conversion to .tflite and full-int8 quantisation."""

from tfscissor.quantize.ptq import QuantizeResult, quantize_int8, quantize_model, to_tflite

__all__ = ["QuantizeResult", "quantize_int8", "quantize_model", "to_tflite"]
