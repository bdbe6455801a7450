"""The crop stage as the CLI and recipes run it: box labels for a data set, a cropper sized and trained for
it, and the loading rules that keep a cropper and a classifier consistent with each other and the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfscissor.crop.training import (
    CROPPER_EPOCHS,
    CROPPER_LEARNING_RATE,
    CROPPER_LOSS,
    box_report,
    late_gain,
    predict_boxes,
    train_cropper,
)
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
    resolution=None,
    labels="auto",
    cache_dir=None,
    epochs=CROPPER_EPOCHS,
    batch_size=64,
    learning_rate=CROPPER_LEARNING_RATE,
    loss=CROPPER_LOSS,
    cropper_options=None,
    seed=0,
    callbacks=(),
    progress=None,
):
    """Label, size, build and train a cropper for ``dataset`` (whole images at the data's size).

    With a ``classifier``, the default cropper is sized against it as it will run, at ``resolution`` (default:
    its own side): made smaller until its MACs are at most ``MACS_SHARE`` (10%) of the classifier's there and
    its estimated int8 bytes at most ``BYTES_SHARE`` (50%) of the classifier's
    (:func:`~tfscissor.crop.sizing.fitted_cropper`). ``cropper_options`` (view, width, blocks, stages, hidden)
    fix the architecture instead. The report says what it was sized against (``sized``: ``classifier``,
    ``options`` or ``default``), its costs next to the classifier's, and how much its val IoU still rose at
    the end (``late_iou_gain``, :func:`~tfscissor.crop.training.late_gain`; None after one epoch). A data
    set without val images is refused: the boxes are scored on them.
    """
    from tfscissor.analysis import profile_model
    from tfscissor.crop.sizing import BYTES_SHARE, MACS_SHARE, estimated_int8_bytes, fitted_cropper

    if len(dataset.val) == 0:
        raise DataError(
            f"{dataset.spec} has no val images, on which the cropper's boxes are scored: give each class at least "
            "two images (the split keeps one of each on either side)"
        )
    options = dict(cropper_options or {})
    unknown = sorted(set(options) - CROPPER_OPTIONS)
    if unknown:
        raise UsageError(f"unknown cropper option(s) {', '.join(unknown)}: use {', '.join(sorted(CROPPER_OPTIONS))}")
    served = _classifier_at(classifier, resolution)
    box_set = box_labels(dataset, labels, classifier, cache_dir, progress)
    budget = {}
    if served and not options:
        budget = {
            "max_macs": MACS_SHARE * served["classifier_macs"],
            "max_bytes": BYTES_SHARE * served["classifier_bytes"],
        }
    cropper = fitted_cropper(dataset.image_shape, seed=seed, **budget, **options)
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
    macs, size = profile_model(cropper).macs, estimated_int8_bytes(cropper)
    report = {
        "labels": box_set.source,
        "val": box_report(predicted, box_set.val),
        "late_iou_gain": late_gain(history["val_mean_iou"]),
        "macs": macs,
        "bytes": size,
        "sized": "options" if options else "classifier" if served else "default",
    }
    if box_set.source == "cam" and dataset.has_boxes:
        report["truth"] = box_report(predicted, dataset.val.boxes)
        report["labels_vs_truth"] = box_report(box_set.val, dataset.val.boxes)
    if served:
        report.update(served, share=macs / served["classifier_macs"], bytes_share=size / served["classifier_bytes"])
        if budget:
            report.update(macs_budget=budget["max_macs"], bytes_budget=budget["max_bytes"])
    return CropperResult(cropper, box_set, history, report)


def _classifier_at(classifier, resolution):
    """What the cropper is sized against: ``resolution`` (the side the classifier will run at on crops, default
    its own), the classifier's MACs there and its estimated int8 bytes, which no resolution changes; ``{}``
    without a classifier."""
    from tfscissor.analysis import profile_model
    from tfscissor.crop.pipeline import TwoStage
    from tfscissor.crop.sizing import estimated_int8_bytes
    from tfscissor.models.graph import with_input_size

    if classifier is None:
        if resolution is not None:
            raise UsageError(
                f"a resolution ({resolution} px) sizes the cropper against the classifier run at that side: "
                "give the classifier too (--classifier MODEL.keras), or drop the resolution"
            )
        return {}
    # A classifier of any size needs the resolution (side_of says so); one of a fixed size defaults to it.
    resolution = int(resolution or TwoStage.side_of(classifier))
    same = tuple(classifier.input_shape[1:3]) == (resolution, resolution)
    running = classifier if same else with_input_size(classifier, resolution)
    return {
        "resolution": resolution,
        "classifier_macs": profile_model(running).macs,
        "classifier_bytes": estimated_int8_bytes(classifier),
    }


@dataclass(frozen=True, eq=False)
class CropFinetuneResult:
    """A classifier fine-tuned on crops at ``resolution``, and crop-then-classify on val with the cropper's
    boxes (``val_boxes``) after and, when compared, before (the original weights at that size; None if not)."""

    model: object
    resolution: int
    val_boxes: np.ndarray
    before: dict | None
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
    distill=True,
    compare=True,
):
    """Fine-tune ``classifier`` at ``resolution`` (default: its own side) on the crops ``cropper`` gives
    (a share ``mix``) and on jittered ``truth`` boxes (:func:`~tfscissor.crop.pipeline.train_on_crops`), and
    evaluate crop-then-classify on ``dataset.val`` after and (with ``compare``) before. With ``distill``, ``classifier`` as it is
    (seeing whole images) teaches its low-resolution copy, which sees crops. ``classifier`` is not changed."""
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
        teacher=classifier if distill else None,
    )
    before = None
    if compare:
        moved = TwoStage(cropper, with_input_size(classifier, resolution), policy, names)
        before = moved.evaluate(dataset.val, val_boxes, macs=False)
    after = TwoStage(cropper, model, policy, names).evaluate(dataset.val, val_boxes)
    return CropFinetuneResult(model, resolution, val_boxes, before, after)


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
    distill=True,
    batch_size=64,
    seed=0,
    cropper_callbacks=(),
    callbacks=(),
    strategy=None,
    cache_dir=None,
    progress=None,
):
    """Smart Scissor's crop stage: a cropper sized against ``classifier`` at ``resolution`` and trained on
    ``dataset``'s box labels (:func:`train_cropper_stage`), then ``classifier`` fine-tuned on its crops at ``resolution``
    (:func:`finetune_on_crops`, its labels the cropper's training boxes)."""
    trained = train_cropper_stage(
        dataset,
        classifier=classifier,
        resolution=resolution,
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
        distill=distill,
        compare=False,  # the stage reports the pipeline it made, not the copy it started from
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
