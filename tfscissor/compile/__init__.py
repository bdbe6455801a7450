"""The compile targets: ``tflite`` and ``edgetpu`` bundles (with the Edge TPU mapping), TensorFlow Lite Micro
firmware projects and their board ports, flashing.

Nothing here imports TensorFlow, so the deployment path runs where only ``ai-edge-litert`` and
``tflite-micro`` are installed.
"""

from tfscissor.compile.boards import BOARDS, check_fit
from tfscissor.compile.bundle import write_edgetpu_bundle, write_tflite_bundle
from tfscissor.compile.edgetpu import analyse_edgetpu
from tfscissor.compile.edgetpu_compiler import compile_models
from tfscissor.compile.flash import flash_project
from tfscissor.compile.ports import PORTS
from tfscissor.compile.tflm import TFLMProject, write_tflm_project
from tfscissor.compile.tflm_ops import RESOLVER_METHODS, resolver_methods

__all__ = [
    "BOARDS",
    "PORTS",
    "RESOLVER_METHODS",
    "TFLMProject",
    "analyse_edgetpu",
    "check_fit",
    "compile_models",
    "flash_project",
    "resolver_methods",
    "write_edgetpu_bundle",
    "write_tflite_bundle",
    "write_tflm_project",
]
