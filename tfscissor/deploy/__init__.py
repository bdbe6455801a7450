"""What runs at deployment, without TensorFlow: reading ``.tflite`` flatbuffers, int8 input and output
(:mod:`~tfscissor.deploy.litert`), the TFLM tensor arena a model needs, and Smart Scissor's crop policy and box
format, which the firmware mirrors in C.

Compile, bench, crop and shrink all build on this layer; it imports nothing of theirs, and needs only numpy,
``ai-edge-litert`` and ``tflite-micro``.
"""

from tfscissor.deploy.arena import configured_arena, measure_arena
from tfscissor.deploy.boxes import BOX_FIELDS, FULL_IMAGE, box_iou, check_box_outputs, valid_boxes
from tfscissor.deploy.crop_policy import DEFAULT_SCALES, CropPolicy, CropResult, crop_and_resize, crop_backend
from tfscissor.deploy.flatbuffer import TensorInfo, TFLiteInfo, read_model
from tfscissor.deploy.litert import TFLiteModel, dequantize, quantize_image, read_tflite

__all__ = [
    "BOX_FIELDS",
    "DEFAULT_SCALES",
    "FULL_IMAGE",
    "CropPolicy",
    "CropResult",
    "TFLiteInfo",
    "TFLiteModel",
    "TensorInfo",
    "box_iou",
    "check_box_outputs",
    "configured_arena",
    "crop_and_resize",
    "crop_backend",
    "dequantize",
    "measure_arena",
    "quantize_image",
    "read_model",
    "read_tflite",
    "valid_boxes",
]
