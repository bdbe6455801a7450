"""Smart Scissor's dynamic cropping: box labels, the cropper's training, the crop policy and the two-stage
crop-then-classify pipeline. Importing this package loads numpy only; Keras and TensorFlow load on use."""

from tfscissor.crop.boxes import box_iou, jitter_boxes, square_boxes, valid_boxes
from tfscissor.crop.cam import cached_cam_boxes, cam_boxes, gradcam
from tfscissor.crop.pipeline import JITTER, TwoStage, quantize_two_stage, train_on_crops
from tfscissor.crop.policy import DEFAULT_SCALES, CropPolicy, CropResult, crop_and_resize
from tfscissor.crop.stage import box_labels, load_two_stage, quantize_pipeline, train_cropper_stage
from tfscissor.crop.training import box_report, predict_boxes, train_cropper

__all__ = [
    "DEFAULT_SCALES",
    "JITTER",
    "CropPolicy",
    "CropResult",
    "TwoStage",
    "box_iou",
    "box_labels",
    "box_report",
    "cached_cam_boxes",
    "cam_boxes",
    "crop_and_resize",
    "gradcam",
    "jitter_boxes",
    "load_two_stage",
    "predict_boxes",
    "quantize_pipeline",
    "quantize_two_stage",
    "square_boxes",
    "train_cropper",
    "train_cropper_stage",
    "train_on_crops",
    "valid_boxes",
]
