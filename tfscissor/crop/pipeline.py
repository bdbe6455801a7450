"""The two-stage pipeline: the cropper finds the object in the whole image, the crop policy cuts it out at
the classifier's resolution, and the classifier names it.

:class:`TwoStage` runs with Keras models or with int8 ``.tflite`` models in LiteRT (:class:`TFLiteModel`),
so the float pipeline and the deployed one are measured by the same code. :func:`train_on_crops` teaches a
classifier the crops the trained cropper really produces, mixed with jittered true boxes: a classifier
trained on perfect crops loses most of cropping's gain when the boxes are off (../shared/PAPERS.md, sec. 4).
"""

from __future__ import annotations

import numpy as np

from tfscissor.crop.training import box_report, predict_boxes, run_model
from tfscissor.data.dataset import Dataset, Split, resize_images
from tfscissor.deploy.boxes import jitter_boxes
from tfscissor.deploy.crop_policy import CropPolicy
from tfscissor.deploy.litert import is_tflite
from tfscissor.errors import ModelError, UsageError

__all__ = ["TwoStage", "cropped", "train_on_crops", "JITTER"]

# How far jittered true boxes stray: up to 15% of the box's side off centre, 0.85x to 1.2x its size. These
# are the errors measured in ../shared/PAPERS.md section 4.
JITTER = {"shift": 0.15, "scale": (0.85, 1.2)}


def _image_shape(model):
    shape = model.input_shape if is_tflite(model) else model.input_shape[1:]
    if None in shape:
        raise ModelError(
            f"model {model.name} takes images of any size {tuple(shape)}: give the pipeline a fixed size "
            "(--resolution R for a classifier)"
        )
    return tuple(int(d) for d in shape)


class TwoStage:
    """A cropper and a classifier joined by a crop policy; each model is Keras or a ``TFLiteModel``.

    The cropper takes the whole image; the classifier takes square crops at its own resolution, with the
    same number of channels. ``names`` (cropper, classifier), such as their file paths, name them in errors
    (default: the models' own names).
    """

    def __init__(self, cropper, classifier, policy=None, names=None):
        self.cropper, self.classifier = cropper, classifier
        self.policy = policy if policy is not None else CropPolicy()
        self.names = tuple(names) if names is not None else (cropper.name, classifier.name)
        image, crop = _image_shape(cropper), _image_shape(classifier)
        if crop[0] != crop[1] or crop[2] != image[2]:
            raise ModelError(
                f"classifier {self.names[1]} takes {crop} images and cropper {self.names[0]} takes {image}: "
                f"the classifier needs square crops with the cropper's {image[2]} channels"
            )

    @property
    def image_shape(self):
        """(H, W, C) of the whole images the pipeline takes."""
        return _image_shape(self.cropper)

    @property
    def resolution(self):
        """The side of the classifier's square input."""
        return self.side_of(self.classifier)

    @staticmethod
    def side_of(model):
        """The side of a (Keras or ``.tflite``) model's square image input."""
        return _image_shape(model)[0]

    def check_data(self, images, what="the data"):
        if tuple(np.asarray(images).shape[1:]) != self.image_shape:
            raise ModelError(
                f"cropper {self.names[0]} takes images of {self.image_shape}, {what} has "
                f"{tuple(np.asarray(images).shape[1:])}: use the data the cropper was trained on"
            )

    def crops(self, images, boxes=None):
        """``(CropResult, boxes)``: the crops of ``images`` at ``boxes`` (default: the cropper's), and the boxes."""
        self.check_data(images)
        boxes = predict_boxes(self.cropper, images) if boxes is None else np.asarray(boxes, np.float32)
        return self.policy.crop(images, boxes, self.resolution), boxes

    def predict(self, images, boxes=None):
        """``(scores, CropResult, boxes)``: class scores for whole images, the crops they were classified from
        and the boxes those came from (the cropper's unless ``boxes`` are given, e.g. computed already)."""
        crops, boxes = self.crops(images, boxes)
        return run_model(self.classifier, crops.images), crops, boxes

    def macs(self):
        """MACs per image of each stage and in total, or None when either model is a ``.tflite``."""
        if is_tflite(self.cropper) or is_tflite(self.classifier):
            return None
        from tfscissor.analysis import profile_model

        cropper, classifier = profile_model(self.cropper).macs, profile_model(self.classifier).macs
        return {"cropper": cropper, "classifier": classifier, "total": cropper + classifier}

    def evaluate(self, split, boxes=None, macs=True):
        """Accuracy on ``split``, how good the boxes were (IoU against true boxes where the split has them),
        how many fell back to the whole image, and (with ``macs``) MACs per stage. ``boxes``: the cropper's
        boxes for ``split``, when they are at hand already."""
        if len(split) == 0:
            raise ModelError("cannot evaluate on an empty split: check the data spec")
        self.check_data(split.images, "the split")
        scores, crops, boxes = self.predict(split.images, boxes)
        if scores.shape[-1] <= int(split.labels.max()):
            raise ModelError(
                f"classifier {self.names[1]} has {scores.shape[-1]} outputs, the data has label "
                f"{int(split.labels.max())}: use a classifier trained on this data"
            )
        report = {
            "accuracy": float(np.mean(np.argmax(scores, axis=-1) == split.labels)),
            "samples": len(split),
            "resolution": self.resolution,
            "fallbacks": crops.fallback_count,
            "boxes": box_report(boxes, split.boxes),
            "policy": self.policy.to_dict(),
        }
        costs = self.macs() if macs else None
        if costs is not None:
            report["macs"] = costs
        return report


def train_on_crops(
    classifier,
    dataset,
    *,
    resolution,
    predicted=None,
    truth=None,
    val_boxes=None,
    mix=0.5,
    policy=None,
    jitter=None,
    epochs=5,
    batch_size=64,
    learning_rate=1e-3,
    seed=0,
    callbacks=(),
    strategy=None,
    teacher=None,
):
    """Train a copy of ``classifier`` on crops of ``dataset.train`` at ``resolution``; return (model, history).

    ``predicted``: the trained cropper's boxes for the train images; ``truth``: true (or pseudo) boxes. Each
    epoch, each image is cropped at its predicted box with probability ``mix``, otherwise at its true box
    jittered by ``jitter`` (default :data:`JITTER`); with only one of the two, all crops come from it (true
    boxes still jittered). Validation crops come from ``val_boxes`` (the cropper's boxes for the val images:
    what the deployed pipeline sees). The classifier must be convolutional with global pooling if
    ``resolution`` differs from its input; the given model is not changed. With a ``tf.distribute``
    ``strategy``, training runs on its replicas (``batch_size`` is the global batch, split across them).
    With a ``teacher`` (a classifier of the same classes, typically ``classifier`` itself before the move to
    the lower resolution), the loss is :func:`~tfscissor.models.training.distillation_loss` on its outputs for
    the whole images, resized to its input: the teacher sees all of each image, the student only the crop.
    """
    import keras

    from tfscissor.crop.batches import EpochCrops
    from tfscissor.models.distribute import check_training, trained_under
    from tfscissor.models.graph import with_input_size
    from tfscissor.models.training import compile_classifier, distillation_targets

    if predicted is None and truth is None:
        raise UsageError("train_on_crops needs boxes: give the cropper's predicted boxes, true boxes, or both")
    if not 0.0 <= mix <= 1.0:
        raise UsageError(f"mix must be a fraction in [0, 1], got {mix!r}: e.g. mix=0.5")
    policy = policy if policy is not None else CropPolicy()
    jitter = dict(JITTER, **(jitter or {}))
    images, labels = dataset.train.images, dataset.train.labels
    for name, boxes in (("predicted", predicted), ("truth", truth)):
        if boxes is not None and np.shape(boxes) != (len(images), 4):
            raise UsageError(f"{name} boxes must have shape ({len(images)}, 4), got {np.shape(boxes)}")
    share = 1.0 if truth is None else 0.0 if predicted is None else mix

    def draw(epoch):
        rng = np.random.default_rng([seed, epoch])
        boxes = predicted
        if share < 1.0:
            jittered = jitter_boxes(truth, rng, **jitter)
            boxes = (
                jittered
                if predicted is None
                else np.where((rng.random(len(images)) < share)[:, None], predicted, jittered)
            )
        return policy.crop(images, boxes, resolution).images, rng.permutation(len(images))

    check_training(
        strategy, batch_size, train_split=len(images), val_split=len(dataset.val) if val_boxes is not None else 0
    )
    model = with_input_size(classifier, resolution)
    val_labels = dataset.val.labels
    if teacher is not None:
        if teacher.output_shape[-1] != model.output_shape[-1]:
            raise ModelError(
                f"teacher {teacher.name} has {teacher.output_shape[-1]} outputs, the classifier "
                f"{model.output_shape[-1]}: distil from a model of the same classes"
            )
        side = tuple(int(d) for d in teacher.input_shape[1:3])
        labels = distillation_targets(labels, resize_images(images, side), teacher)
        val_labels = distillation_targets(val_labels, resize_images(dataset.val.images, side), teacher)
    validation = None
    if val_boxes is not None:
        val_crops = policy.crop(dataset.val.images, val_boxes, resolution).images
        validation = (val_crops.astype(np.float32), val_labels)
    with trained_under(model, strategy) as trainee:
        keras.utils.set_random_seed(seed)
        batches = EpochCrops(draw, labels, batch_size)
        compile_classifier(trainee, learning_rate, decay_steps=epochs * len(batches), distill=teacher is not None)
        history = trainee.fit(batches, validation_data=validation, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model, {k: [float(v) for v in values] for k, values in history.history.items()}


def cropped(dataset, cropper, policy=None):
    """``data_at`` for a shrink search with a cropper: the data set as crops at each resolution, cut at the
    boxes ``cropper`` predicts for the train and val images (predicted once, crops cached per resolution)."""
    boxes = [predict_boxes(cropper, split.images) for split in (dataset.train, dataset.val)]
    return cropped_at(dataset, *boxes, policy=policy)


def cropped_at(dataset, train_boxes, val_boxes, policy=None):
    """``data_at`` of ``dataset`` as crops at given boxes, one (N, 4) array per split (the data's own true
    boxes, say, for what a perfect cropper would give); crops cached per resolution."""
    policy = policy if policy is not None else CropPolicy()
    boxes = (train_boxes, val_boxes)
    cache = {}

    def data_at(resolution):
        if resolution not in cache:
            splits = [
                Split(policy.crop(split.images, found, resolution).images, split.labels, split.boxes)
                for split, found in zip((dataset.train, dataset.val), boxes, strict=True)
            ]
            cache[resolution] = Dataset(dataset.spec, dataset.class_names, *splits)
        return cache[resolution]

    return data_at
