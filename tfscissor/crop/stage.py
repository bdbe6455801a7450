"""The crop stage as the CLI and recipes run it: box labels for a data set, a cropper sized and trained for
it, and the loading rules that keep a cropper and a classifier consistent with each other and the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfscissor.crop.training import CROPPER_EPOCHS, CROPPER_LEARNING_RATE, box_report, predict_boxes, train_cropper
from tfscissor.deploy.boxes import check_box_outputs
from tfscissor.deploy.litert import is_tflite
from tfscissor.errors import DataError, UsageError

__all__ = [
    "BoxLabels",
    "CropFinetuneResult",
    "CropStageResult",
    "CropperResult",
    "box_labels",
    "check_cropper",
    "finetune_on_crops",
    "load_stage_model",
    "load_two_stage",
    "run_crop",
    "train_cropper_stage",
    "LABEL_SOURCES",
]

LABEL_SOURCES = ("auto", "boxes", "cam")
CROPPER_OPTIONS = {"view", "width", "blocks", "stages", "hidden"}  # build_cropper's architecture arguments


@dataclass(frozen=True, eq=False)
class BoxLabels:
    """Normalised boxes for the train and val images; ``source`` is ``boxes`` (the data's) or ``cam``."""

    train: np.ndarray
    val: np.ndarray
    source: str
    cache: tuple = ()  # CAM cache files read or written


def box_labels(dataset, source="auto", classifier=None, cache_dir=None, progress=None):
    """Boxes to train a cropper on: the data's own (``boxes``), Grad-CAM pseudo-boxes of ``classifier`` for
    the true class (``cam``), or the data's where it has them and CAM otherwise (``auto``).

    The classifier may take another image size than the data: CAM runs on resized images, and boxes are
    normalised. ``progress``: a tqdm-like bar advanced per image explained.
    """
    if source not in LABEL_SOURCES:
        raise UsageError(f"unknown box labels {source!r}: use one of {', '.join(LABEL_SOURCES)}")
    if source == "auto":
        source = "boxes" if dataset.has_boxes else "cam"
    if source == "boxes":
        if not dataset.has_boxes:
            raise DataError(
                f"data {dataset.spec} has no boxes: add PATH/boxes.csv to the image folder, or use "
                "--labels cam with --classifier MODEL for Grad-CAM pseudo-boxes"
            )
        return BoxLabels(dataset.train.boxes, dataset.val.boxes, "boxes")
    if classifier is None:
        raise UsageError(
            "CAM box labels need the trained classifier: give --classifier MODEL.keras (its Grad-CAM for the "
            "true class gives each image's box)"
        )
    from tfscissor.crop.cam import cached_cam_boxes
    from tfscissor.data.dataset import resize_images

    size = tuple(classifier.input_shape[1:3])
    size = dataset.image_shape[:2] if None in size else size  # a classifier of any size explains the data as is
    boxes, paths = [], []
    for split in (dataset.train, dataset.val):
        images = resize_images(split.images, size)
        found, path, _ = cached_cam_boxes(classifier, images, split.labels, cache_dir=cache_dir, progress=progress)
        boxes.append(found)
        paths.append(Path(path))
    return BoxLabels(boxes[0], boxes[1], "cam", tuple(paths))


@dataclass(frozen=True, eq=False)
class CropperResult:
    """A trained cropper and what it was trained on and scored.

    ``report``: its val boxes against the labels (``labels``) and, where the data has true boxes and the
    labels were CAM, against the truth (``truth``); its MACs and, given a classifier, its share of it.
    """

    model: object
    labels: BoxLabels
    history: dict
    report: dict = field(default_factory=dict)


def train_cropper_stage(
    dataset,
    *,
    classifier=None,
    labels="auto",
    cache_dir=None,
    epochs=CROPPER_EPOCHS,
    batch_size=64,
    learning_rate=CROPPER_LEARNING_RATE,
    loss="mse",
    cropper_options=None,
    seed=0,
    callbacks=(),
    progress=None,
):
    """Label, size, build and train a cropper for ``dataset`` (whole images at the data's size).

    With a ``classifier``, the default cropper is narrowed until its MACs are at most ``MACS_SHARE`` (5%) of
    the classifier's; ``cropper_options`` (view, width, blocks, stages, hidden) fix the architecture instead.
    """
    from tfscissor.analysis import profile_model
    from tfscissor.crop.sizing import MACS_SHARE, fitted_cropper

    box_set = box_labels(dataset, labels, classifier, cache_dir, progress)
    options = dict(cropper_options or {})
    classifier_macs = profile_model(classifier).macs if classifier is not None else None
    budget = MACS_SHARE * classifier_macs if classifier_macs and not options else None
    unknown = sorted(set(options) - CROPPER_OPTIONS)
    if unknown:
        raise UsageError(f"unknown cropper option(s) {', '.join(unknown)}: use {', '.join(sorted(CROPPER_OPTIONS))}")
    cropper = fitted_cropper(dataset.image_shape, budget, seed=seed, **options)
    history = train_cropper(
        cropper,
        dataset.train.images,
        box_set.train,
        dataset.val.images,
        box_set.val,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        loss=loss,
        seed=seed,
        callbacks=callbacks,
    )
    predicted = predict_boxes(cropper, dataset.val.images)
    macs = profile_model(cropper).macs
    report = {"labels": box_set.source, "val": box_report(predicted, box_set.val), "macs": macs}
    if box_set.source == "cam" and dataset.has_boxes:
        report["truth"] = box_report(predicted, dataset.val.boxes)
        report["labels_vs_truth"] = box_report(box_set.val, dataset.val.boxes)
    if classifier_macs:
        report.update(classifier_macs=classifier_macs, share=macs / classifier_macs)
    return CropperResult(cropper, box_set, history, report)


@dataclass(frozen=True, eq=False)
class CropFinetuneResult:
    """A classifier fine-tuned on crops at ``resolution``, and crop-then-classify on val with the cropper's
    boxes (``val_boxes``) before (the original weights at that size) and after."""

    model: object
    resolution: int
    val_boxes: np.ndarray
    before: dict
    after: dict


def finetune_on_crops(
    cropper,
    classifier,
    dataset,
    *,
    resolution=None,
    truth=None,
    mix=0.5,
    policy=None,
    epochs=5,
    batch_size=64,
    learning_rate=1e-3,
    seed=0,
    callbacks=(),
    strategy=None,
    names=None,
):
    """Fine-tune ``classifier`` at ``resolution`` (default: its own side) on the crops ``cropper`` gives
    (a share ``mix``) and on jittered ``truth`` boxes (:func:`~tfscissor.crop.pipeline.train_on_crops`), and
    evaluate crop-then-classify on ``dataset.val`` before and after. ``classifier`` is not changed."""
    from tfscissor.crop.pipeline import TwoStage, train_on_crops
    from tfscissor.models.graph import with_input_size

    resolution = resolution or TwoStage.side_of(classifier)
    val_boxes = predict_boxes(cropper, dataset.val.images)
    model, _ = train_on_crops(
        classifier,
        dataset,
        resolution=resolution,
        predicted=predict_boxes(cropper, dataset.train.images),
        truth=truth,
        val_boxes=val_boxes,
        mix=mix,
        policy=policy,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        callbacks=callbacks,
        strategy=strategy,
    )
    before = TwoStage(cropper, with_input_size(classifier, resolution), policy, names)
    after = TwoStage(cropper, model, policy, names)
    return CropFinetuneResult(
        model,
        resolution,
        val_boxes,
        before.evaluate(dataset.val, val_boxes, macs=False),
        after.evaluate(dataset.val, val_boxes),
    )


@dataclass(frozen=True, eq=False)
class CropStageResult:
    """The whole crop stage: the trained cropper (:class:`CropperResult`) and the classifier fine-tuned on
    its crops (:class:`CropFinetuneResult`)."""

    cropper: CropperResult
    finetuned: CropFinetuneResult


def run_crop(
    dataset,
    classifier,
    *,
    labels="auto",
    cropper_options=None,
    epochs=CROPPER_EPOCHS,
    learning_rate=CROPPER_LEARNING_RATE,
    resolution=None,
    mix=0.5,
    policy=None,
    finetune_epochs=5,
    finetune_learning_rate=1e-3,
    batch_size=64,
    seed=0,
    cropper_callbacks=(),
    callbacks=(),
    strategy=None,
    cache_dir=None,
    progress=None,
):
    """Smart Scissor's crop stage: a cropper sized for and trained on ``dataset``'s box labels
    (:func:`train_cropper_stage`), then ``classifier`` fine-tuned on its crops at ``resolution``
    (:func:`finetune_on_crops`, its labels the cropper's training boxes)."""
    trained = train_cropper_stage(
        dataset,
        classifier=classifier,
        labels=labels,
        cache_dir=cache_dir,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        cropper_options=cropper_options,
        seed=seed,
        callbacks=cropper_callbacks,
        progress=progress,
    )
    finetuned = finetune_on_crops(
        trained.model,
        classifier,
        dataset,
        resolution=resolution,
        truth=trained.labels.train,
        mix=mix,
        policy=policy,
        epochs=finetune_epochs,
        batch_size=batch_size,
        learning_rate=finetune_learning_rate,
        seed=seed,
        callbacks=callbacks,
        strategy=strategy,
    )
    return CropStageResult(trained, finetuned)


def load_stage_model(path, role):
    """A ``.keras`` model (safe mode) or a ``.tflite`` model in LiteRT, for one stage of the pipeline."""
    suffix = Path(path).suffix
    if suffix == ".keras":
        from tfscissor.models import load_model

        return load_model(path)
    if suffix == ".tflite":
        from tfscissor.deploy.litert import TFLiteModel

        return TFLiteModel.load(path)
    raise UsageError(f"{role} {path} must be a .keras or .tflite file")


def check_cropper(cropper, name):
    """Refuse a Keras or ``.tflite`` model, named ``name`` in the error, whose output is not one box."""
    check_box_outputs(cropper.output["shape"][-1] if is_tflite(cropper) else cropper.output_shape[-1], name)


def load_two_stage(cropper_path, classifier_path, resolution=None, policy=None):
    """A :class:`TwoStage` from two model files; ``resolution`` moves a ``.keras`` classifier to that input
    size (weights unchanged: fine-tune it there with :func:`train_on_crops` for the accuracy it can have)."""
    from tfscissor.crop.pipeline import TwoStage
    from tfscissor.models.graph import with_input_size

    cropper = load_stage_model(cropper_path, "cropper")
    check_cropper(cropper, cropper_path)
    classifier = load_stage_model(classifier_path, "classifier")
    if resolution is not None:
        side = TwoStage.side_of(classifier)
        if resolution != side:
            if is_tflite(classifier):
                raise UsageError(
                    f"classifier {classifier_path} is a .tflite model fixed at {side} px: drop --resolution, or "
                    f"quantize a classifier fine-tuned at {resolution} px"
                )
            classifier = with_input_size(classifier, resolution)
    return TwoStage(cropper, classifier, policy, names=(cropper_path, classifier_path))
