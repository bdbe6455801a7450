"""Example crops for the report: a few input images with their true boxes and the boxes a cropper predicts.

A cropper stage saves them once (:func:`save_crop_examples`, with the boxes its cropper predicted) and names
the file in its ``files["crop_examples"]``; the report only reads the ``.npz`` (:func:`load_crop_examples`), so
neither writing nor drawing it runs a model. Boxes are normalised ``[xmin, ymin, xmax, ymax]``; a true box is NaN where the data has none.
"""

import numpy as np

from tfscissor.errors import DataError, UsageError
from tfscissor.io import atomic_path


def save_crop_examples(path, images, predicted, true_boxes=None):
    """Save ``images`` (N, H, W, C) in [0, 255], the boxes a cropper ``predicted`` for them and their
    ``true_boxes`` (N, 4, or None where the data has none) to ``path`` (``.npz``)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise UsageError(f"crop examples need images (N, H, W, C), got shape {images.shape}")
    true = np.full((len(images), 4), np.nan, np.float32) if true_boxes is None else np.asarray(true_boxes, np.float32)
    if true.shape != (len(images), 4):
        raise UsageError(
            f"{len(images)} images but true boxes of shape {true.shape}: give one box (4 values) per image"
        )
    predicted = np.asarray(predicted, np.float32)
    if predicted.shape != (len(images), 4):
        raise UsageError(f"{len(images)} images but predicted boxes of shape {predicted.shape}: give one box per image")
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, images=np.clip(images, 0, 255).astype(np.uint8), predicted=predicted, true=true)


def load_crop_examples(path):
    """``(images, predicted, true)`` as :func:`save_crop_examples` wrote them."""
    try:
        with np.load(path) as data:
            images, predicted, true = data["images"], data["predicted"], data["true"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"cannot read crop examples {path}: {err}; save them again") from err
    if images.ndim != 4 or predicted.shape != (len(images), 4) or true.shape != (len(images), 4):
        raise DataError(
            f"crop examples {path} hold images {images.shape}, boxes {predicted.shape} and {true.shape}: "
            "expected (N, H, W, C) and two (N, 4); save them again"
        )
    return images, predicted, true
