"""Smart Scissor's dynamic cropping: box labels, the cropper's training and the two-stage crop-then-classify
pipeline (the crop policy and box format are :mod:`tfscissor.deploy`'s). Importing this package loads numpy only; Keras and TensorFlow load on use."""

from tfscissor.crop.cam import cached_cam_boxes, cam_boxes, gradcam
from tfscissor.crop.pipeline import JITTER, TwoStage, train_on_crops
from tfscissor.crop.stage import box_labels, finetune_on_crops, load_two_stage, run_crop, train_cropper_stage
from tfscissor.crop.training import box_report, predict_boxes, train_cropper

__all__ = [
    "JITTER",
    "TwoStage",
    "box_labels",
    "box_report",
    "cached_cam_boxes",
    "cam_boxes",
    "finetune_on_crops",
    "gradcam",
    "load_two_stage",
    "predict_boxes",
    "run_crop",
    "train_cropper",
    "train_cropper_stage",
    "train_on_crops",
]
