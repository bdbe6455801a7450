"""Losses and a metric for box regression, in ``keras.ops`` so they run on any Keras backend.

Boxes are ``[xmin, ymin, xmax, ymax]`` normalised to [0, 1]; predictions come from a sigmoid.
"""

import keras
from keras import ops

__all__ = ["weighted_box_mse", "giou_loss", "mean_iou", "LOSSES", "BOX_WEIGHTS"]

# Smart Scissor's weighting: the far corner's error costs a quarter more.
BOX_WEIGHTS = (1.0, 1.0, 1.25, 1.25)


@keras.saving.register_keras_serializable(package="tfscissor")
def weighted_box_mse(y_true, y_pred):
    """Mean squared error per coordinate, weighted by :data:`BOX_WEIGHTS`."""
    weights = ops.convert_to_tensor(BOX_WEIGHTS, dtype=y_pred.dtype)
    return ops.mean(weights * ops.square(ops.cast(y_true, y_pred.dtype) - y_pred), axis=-1)


def _iou_terms(y_true, y_pred):
    y_true = ops.cast(y_true, y_pred.dtype)
    p_x0, p_y0, p_x1, p_y1 = y_pred[..., 0], y_pred[..., 1], y_pred[..., 2], y_pred[..., 3]
    t_x0, t_y0, t_x1, t_y1 = y_true[..., 0], y_true[..., 1], y_true[..., 2], y_true[..., 3]
    inter = ops.relu(ops.minimum(p_x1, t_x1) - ops.maximum(p_x0, t_x0)) * ops.relu(
        ops.minimum(p_y1, t_y1) - ops.maximum(p_y0, t_y0)
    )
    # An inverted prediction has no area: the crop policy treats it as degenerate too.
    union = ops.relu(p_x1 - p_x0) * ops.relu(p_y1 - p_y0) + (t_x1 - t_x0) * (t_y1 - t_y0) - inter
    hull = (ops.maximum(p_x1, t_x1) - ops.minimum(p_x0, t_x0)) * (ops.maximum(p_y1, t_y1) - ops.minimum(p_y0, t_y0))
    return inter, union, hull


@keras.saving.register_keras_serializable(package="tfscissor")
def giou_loss(y_true, y_pred):
    """1 - generalised IoU, plus :func:`weighted_box_mse`.

    GIoU still has a gradient when the boxes do not overlap, but none that uninverts an inverted box;
    the squared error supplies it (the pairing detectors such as DETR use, with L1 there).
    """
    inter, union, hull = _iou_terms(y_true, y_pred)
    eps = keras.config.epsilon()
    iou = inter / (union + eps)
    return 1.0 - (iou - (hull - union) / (hull + eps)) + weighted_box_mse(y_true, y_pred)


@keras.saving.register_keras_serializable(package="tfscissor")
def mean_iou(y_true, y_pred):
    """IoU of each predicted box with its true box (Keras averages it over the batch)."""
    inter, union, _ = _iou_terms(y_true, y_pred)
    return inter / (union + keras.config.epsilon())


LOSSES = {"mse": weighted_box_mse, "giou": giou_loss}
