"""Deployment: reading ``.tflite`` files and writing TensorFlow Lite Micro firmware projects.

Nothing here imports TensorFlow, so the deployment path runs where only ``ai-edge-litert`` and
``tflite-micro`` are installed.
"""

from tfscissor.compile.flatbuffer import TensorInfo, TFLiteInfo, read_model
from tfscissor.compile.tflm import TFLMProject, measure_arena, write_tflm_project
from tfscissor.compile.tflm_ops import RESOLVER_METHODS, resolver_methods

__all__ = [
    "RESOLVER_METHODS",
    "TFLMProject",
    "TFLiteInfo",
    "TensorInfo",
    "measure_arena",
    "read_model",
    "resolver_methods",
    "write_tflm_project",
]
