"""Normalised boxes ``[xmin, ymin, xmax, ymax]`` in [0, 1]: overlap, validity and jitter, in numpy."""

from __future__ import annotations

import numpy as np

from tfscissor.errors import ModelError

__all__ = ["box_iou", "valid_boxes", "jitter_boxes", "square_boxes", "check_box_outputs", "BOX_FIELDS", "FULL_IMAGE"]

BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")  # a box's four values, normalised to [0, 1], in this order
FULL_IMAGE = np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)


def check_box_outputs(outputs, name):
    """Refuse a model given as a cropper whose output is not one box (4 values)."""

    if int(outputs) != 4:
        raise ModelError(
            f"cropper {name} has {outputs} outputs, not a box (xmin, ymin, xmax, ymax): give a cropper made by "
            "`tfscissor crop train` (and `quantize --cropper`)"
        )


def box_iou(a, b):
    """Intersection over union of matching rows of ``a`` and ``b`` (both (N, 4)); 0 where a box is empty."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height

    def area(box):
        return np.clip(box[:, 2] - box[:, 0], 0, None) * np.clip(box[:, 3] - box[:, 1], 0, None)

    union = area(a) + area(b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(iou, nan=0.0)


def valid_boxes(boxes):
    """True for rows that are finite with positive width and height: the ones a crop can be made from."""
    boxes = np.asarray(boxes, np.float64)
    finite = np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def square_boxes(boxes, aspect=1.0):
    """Grow the short side of each box to its long side, about its centre, then shift it back into [0, 1].

    ``aspect`` is the image's width / height: "square" means square in pixels. A box larger than the image
    along an axis is clipped to it.
    """
    boxes = np.asarray(boxes, np.float64)
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    side_px = np.maximum((boxes[:, 2] - boxes[:, 0]) * aspect, boxes[:, 3] - boxes[:, 1])  # in height units
    half_w, half_h = np.minimum(side_px / aspect, 1.0) / 2, np.minimum(side_px, 1.0) / 2
    x0 = np.clip(centre_x - half_w, 0.0, 1.0 - 2 * half_w)
    y0 = np.clip(centre_y - half_h, 0.0, 1.0 - 2 * half_h)
    return np.stack([x0, y0, x0 + 2 * half_w, y0 + 2 * half_h], axis=1).astype(np.float32)


def jitter_boxes(boxes, rng, shift=0.15, scale=(0.85, 1.2)):
    """Boxes moved and resized the way a real cropper errs: training augmentation for the classifier.

    Each centre moves by up to ``shift`` times the box's width (x) and height (y), uniformly; both sides
    are multiplied by one factor drawn log-uniformly from ``scale`` (below 1 shrinks, above 1 expands).
    The result is clipped to the image.
    """
    boxes = np.asarray(boxes, np.float64)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    n = len(boxes)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2 + rng.uniform(-shift, shift, n) * width
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2 + rng.uniform(-shift, shift, n) * height
    factor = np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]), n))
    half_w, half_h = width * factor / 2, height * factor / 2
    jittered = np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=1)
    return np.clip(jittered, 0.0, 1.0).astype(np.float32)
