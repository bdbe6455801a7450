"""Pseudo-boxes from Grad-CAM, for data without boxes: where the trained classifier looks for the true class.

For each image, Grad-CAM (Selvaraju et al., 2017) weights the channels of the classifier's last spatial
feature map by the mean gradient of the true class's logit, sums them and keeps the positive part. The map is
resized to the image with the crop policy's filter, and the box spans the pixels whose value is at least
``min + threshold * (max - min)`` (Smart Scissor: 0.5), then is made square. Boxes are cached on disk, keyed by
the classifier's weights, the images, the labels and the threshold, so a second run costs a file read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from tfscissor.deploy.boxes import FULL_IMAGE, square_boxes
from tfscissor.deploy.crop_policy import resize_weights
from tfscissor.errors import ModelError, UsageError
from tfscissor.io import atomic_path

__all__ = ["gradcam", "cam_boxes", "cached_cam_boxes", "default_cache_dir"]

_CACHE_FORMAT = b"tfscissor.cam/1"


def _feature_layer(classifier):
    """The last layer whose output is a spatial (N, H, W, C) map: what Grad-CAM explains."""
    import keras

    for layer in reversed(classifier.layers):
        if isinstance(layer, keras.layers.InputLayer):
            break
        output = getattr(layer, "output", None)
        if output is not None and not isinstance(output, (list, tuple)) and len(output.shape) == 4:
            return layer
    raise ModelError(
        f"classifier {classifier.name} has no spatial feature map to explain: Grad-CAM needs a convolutional model"
    )


def _logit_head(classifier):
    """(tensor feeding the scores, function from it to logits): a softmax is taken off, as Grad-CAM asks."""
    import keras

    output_layer = classifier.layers[-1]
    activation = getattr(output_layer, "activation", None)
    if isinstance(output_layer, keras.layers.Dense) and activation is keras.activations.softmax:

        def logits(x):
            y = keras.ops.matmul(x, output_layer.kernel)
            return y + output_layer.bias if output_layer.use_bias else y

        return output_layer.input, logits
    if isinstance(output_layer, keras.layers.Softmax) or (
        isinstance(output_layer, keras.layers.Activation) and activation is keras.activations.softmax
    ):
        return output_layer.input, lambda x: x
    return classifier.output, lambda x: x


def gradcam(classifier, images, labels, batch_size=64, progress=None):
    """Grad-CAM maps (float32 (N, h, w), at the feature map's resolution, not normalised) for ``labels``.

    ``progress`` (a tqdm bar or anything with ``update(n)``) advances by the images done.
    """
    import keras
    import tensorflow as tf

    from tfscissor.models.graph import functional_graph, has_nested_models, inline_nested, model_inputs
    from tfscissor.models.training import check_input

    images, labels = np.asarray(images), np.asarray(labels, np.int32)
    if None not in classifier.input_shape[1:3]:  # a classifier of any size takes the images as they are
        check_input(classifier, images.shape[1:], "the images to explain")
    classifier = functional_graph(classifier, "Grad-CAM needs a functional or Sequential classifier")
    if has_nested_models(classifier):  # a backbone used as one layer hides its feature maps
        classifier = inline_nested(classifier)
    classes = int(classifier.output_shape[-1])
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ModelError(
            f"classifier {classifier.name} has {classes} outputs, the data has label {int(labels.max())}: "
            "use the classifier trained on this data"
        )
    scores_input, to_logits = _logit_head(classifier)
    probe = keras.Model(model_inputs(classifier), [_feature_layer(classifier).output, scores_input])
    maps = []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start : start + batch_size], tf.float32)
        y = tf.convert_to_tensor(labels[start : start + batch_size])
        with tf.GradientTape() as tape:
            features, before = probe(x, training=False)
            score = tf.gather(to_logits(before), y, axis=1, batch_dims=1)
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        maps.append(tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy())
        if progress is not None:
            progress.update(len(x))
    return np.concatenate(maps).astype(np.float32)


def cam_boxes(classifier, images, labels, threshold=0.5, batch_size=64, progress=None):
    """Normalised, squared pseudo-boxes (float32 (N, 4)) from Grad-CAM of ``classifier`` for ``labels``.

    ``progress`` (a tqdm bar or anything with ``update(n)``) advances by the images done.
    """
    if not 0.0 <= threshold < 1.0:
        raise UsageError(f"CAM threshold must be in [0, 1), got {threshold!r}: e.g. 0.5")
    images = np.asarray(images)
    height, width = images.shape[1:3]
    maps = gradcam(classifier, images, labels, batch_size, progress)
    rows_y, rows_x = resize_weights(maps.shape[1], height), resize_weights(maps.shape[2], width)
    boxes = np.empty((len(images), 4), np.float32)
    for i, cam in enumerate(maps):
        full = rows_y @ cam @ rows_x.T
        low, high = float(full.min()), float(full.max())
        if high <= low:  # a flat map says nothing about where the object is
            boxes[i] = FULL_IMAGE
            continue
        rows, cols = np.nonzero(full >= low + threshold * (high - low))
        boxes[i] = (cols.min() / width, rows.min() / height, (cols.max() + 1) / width, (rows.max() + 1) / height)
    return square_boxes(boxes, aspect=width / height)


def default_cache_dir():
    """``$XDG_CACHE_HOME/tfscissor`` (``~/.cache/tfscissor`` when unset)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfscissor"


def _cache_key(classifier, images, labels, threshold):
    digest = hashlib.sha256(_CACHE_FORMAT)
    for weight in classifier.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    for array in (np.asarray(images), np.asarray(labels, np.int32)):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr(float(threshold)).encode())
    return digest.hexdigest()[:32]


def cached_cam_boxes(classifier, images, labels, threshold=0.5, cache_dir=None, progress=None):
    """:func:`cam_boxes`, read from ``cache_dir`` (default :func:`default_cache_dir`) when computed before.

    Returns ``(boxes, cache_path, was_cached)``. The cache file is written atomically.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"cam-{_cache_key(classifier, images, labels, threshold)}.npy"
    if path.is_file():
        try:
            boxes = np.load(path, allow_pickle=False)
            if boxes.shape == (len(images), 4):
                return boxes.astype(np.float32), path, True
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed and replaced
    boxes = cam_boxes(classifier, images, labels, threshold, progress=progress)
    with atomic_path(path) as tmp:
        np.save(tmp, boxes, allow_pickle=False)
    return boxes, path, False
