"""Slow shared work for the two-stage tests, done once per module: data, a trained cropper, its boxes, a
classifier trained on its crops, and the int8 conversions."""

from types import SimpleNamespace

import numpy as np
import pytest

CLUTTERED_64 = "cluttered:size=64,n=3000,classes=4,seed=1"


@pytest.fixture(scope="module")
def cluttered64():
    """4 classes of 64x64 cluttered images with true boxes: 2400 train, 600 val."""
    from tfscissor.data import load_data

    return load_data(CLUTTERED_64)


@pytest.fixture(scope="module")
def trained_cropper(cluttered64):
    """``(cropper, history)``: a half-width cropper trained for 8 epochs on the true boxes."""
    from tfscissor.crop.training import train_cropper
    from tfscissor.models.cropper import build_cropper

    cropper = build_cropper((64, 64, 3), width=0.5, seed=0)
    history = train_cropper(
        cropper, cluttered64.train.images, cluttered64.train.boxes, epochs=8, learning_rate=5e-3, seed=0
    )
    return cropper, history


@pytest.fixture(scope="module")
def cropper_boxes(trained_cropper, cluttered64):
    """The trained cropper's boxes for the train and val images."""
    from tfscissor.crop.training import predict_boxes

    cropper, _ = trained_cropper
    return SimpleNamespace(
        train=predict_boxes(cropper, cluttered64.train.images), val=predict_boxes(cropper, cluttered64.val.images)
    )


@pytest.fixture(scope="module")
def crop_classifier(cluttered64, cropper_boxes):
    """A plain classifier (built for 64-pixel images) and its copy trained on 32-pixel crops.

    ``original``: the model given to train_on_crops, ``original_weights``: its weights before, ``model`` and
    ``history``: what train_on_crops returned.
    """
    from tfscissor.crop.pipeline import train_on_crops
    from tfscissor.models import build_model

    original = build_model("plain", (64, 64, 3), 4, widths=(16, 32, 32), seed=0)
    original_weights = [np.array(w) for w in original.get_weights()]
    model, history = train_on_crops(
        original,
        cluttered64,
        resolution=32,
        predicted=cropper_boxes.train,
        truth=cluttered64.train.boxes,
        val_boxes=cropper_boxes.val,
        epochs=6,
        learning_rate=3e-3,
    )
    return SimpleNamespace(original=original, original_weights=original_weights, model=model, history=history)


@pytest.fixture(scope="module")
def two_stage(trained_cropper, crop_classifier):
    from tfscissor.crop.pipeline import TwoStage

    return TwoStage(trained_cropper[0], crop_classifier.model)


@pytest.fixture(scope="module")
def int8_two_stage(two_stage, cluttered64):
    """``(cropper bytes, classifier bytes)`` from quantize_two_stage."""
    from tfscissor.quantize.two_stage import quantize_two_stage

    return quantize_two_stage(two_stage, cluttered64)


@pytest.fixture(scope="module")
def int8_cropper(int8_two_stage):
    """The trained cropper as full-int8 ``.tflite`` bytes: quantize_two_stage makes it with quantize_int8,
    calibrated on 200 train images (one TF conversion fewer than quantising it again)."""
    return int8_two_stage[0]
