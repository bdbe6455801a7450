"""``crop train``, ``crop eval`` and ``crop finetune``: Smart Scissor's cropper and the crop-then-classify
pipeline (:mod:`tfscissor.crop`)."""

import click

from tfscissor.cli.options import (
    FiniteRange,
    crop_policy,
    data_option,
    json_option,
    keras_output,
    keras_output_path,
    policy_options,
    seed_option,
)
from tfscissor.cli.output import emit
from tfscissor.crop.stage import (
    LABEL_SOURCES,
    box_labels,
    check_cropper,
    finetune_on_crops,
    load_stage_model,
    load_two_stage,
    train_cropper_stage,
)
from tfscissor.crop.training import (
    CROPPER_EPOCHS,
    CROPPER_LEARNING_RATE,
    CROPPER_LOSS,
    LATE_EPOCHS,
    STILL_IMPROVING,
)
from tfscissor.data import load_data
from tfscissor.errors import UsageError
from tfscissor.io import check_not_input
from tfscissor.models import load_model, save_model
from tfscissor.progress import progress_bar


def _box_line(boxes):
    line = f"{boxes['degenerate']} degenerate of {boxes['boxes']}"
    if "mean_iou" in boxes:
        line = f"mean IoU {boxes['mean_iou']:.3f}, {boxes['iou_above_0_5']:.1%} above 0.5, " + line
    return line


def pipeline_lines(report, label):
    lines = [
        f"{label}: accuracy {report['accuracy']:.4f} on {report['samples']} images at {report['resolution']} px; "
        f"{report['fallbacks']} whole-image fallbacks",
        f"  boxes: {_box_line(report['boxes'])}",
    ]
    if "macs" in report:
        macs = report["macs"]
        lines.append(
            f"  MACs: cropper {macs['cropper']:,} + classifier {macs['classifier']:,} = {macs['total']:,} "
            f"(cropper {macs['cropper'] / macs['classifier']:.1%} of the classifier)"
        )
    return lines


def cropper_lines(report):
    """What ``crop train`` made: the cropper's costs next to the classifier's, and what it was sized against."""
    macs, size = f"{report['macs']:,} MACs", f"{report['bytes']:,} int8 bytes (estimated)"
    if "share" in report:
        macs += f" ({report['share']:.1%} of the classifier's at {report['resolution']} px)"
        size += f" ({report['bytes_share']:.1%} of the classifier's)"
    sized = {
        "options": "sized by --view/--width/--blocks, not against the classifier",
        "default": "sized: the full default (give --classifier to size it against the classifier it serves)",
    }.get(report["sized"])
    if sized is None:
        sized = (
            f"sized against the classifier at {report['resolution']} px: at most {report['macs_budget']:,.0f} MACs "
            f"({report['macs_budget'] / report['classifier_macs']:.0%} of its {report['classifier_macs']:,}) and "
            f"{report['bytes_budget']:,.0f} int8 bytes ({report['bytes_budget'] / report['classifier_bytes']:.0%} "
            f"of its {report['classifier_bytes']:,}, estimated)"
        )
    return [f"cropper: {macs}, {size}, trained on {report['labels']} labels", sized]


def _cam_progress(settings, dataset, labels):
    """A bar for Grad-CAM labelling, shown only when the labels will be CAM boxes."""
    uses_cam = labels == "cam" or (labels == "auto" and not dataset.has_boxes)
    total = len(dataset.train) + len(dataset.val)
    return progress_bar(total=total, desc="CAM boxes", unit="img", enabled=settings.progress and uses_cam)


@click.group()
def crop():
    """The cropper (a tiny box predictor) and the crop-then-classify pipeline.

    \b
    Example:
      tfscissor crop train --data cluttered --classifier model.keras --resolution 32 -o cropper.keras
      tfscissor crop finetune --cropper cropper.keras --classifier model.keras --resolution 32 -o model32.keras
      tfscissor crop eval --cropper cropper.keras --classifier model32.keras
    """


@crop.command(name="train")
@data_option()
@click.option(
    "--classifier",
    "classifier_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The classifier the cropper serves: sizes the cropper (at most 10% of its MACs at --resolution and 50% "
    "of its int8 bytes) and gives CAM labels.",
)
@click.option(
    "--resolution",
    type=click.IntRange(8),
    default=None,
    help="The side the classifier will run at on crops (default: its own): the cropper is sized against it there.",
)
@click.option(
    "--labels",
    type=click.Choice(LABEL_SOURCES),
    default="auto",
    show_default=True,
    help="Box labels: the data's boxes, Grad-CAM pseudo-boxes of --classifier, or boxes where the data has them.",
)
@click.option(
    "--loss",
    type=click.Choice(["giou", "mse"]),
    default=CROPPER_LOSS,
    show_default=True,
    help="Box loss: generalised IoU plus the weighted MSE, or the weighted MSE alone (Smart Scissor's).",
)
@click.option("--view", type=click.IntRange(8), default=None, help="Side of the cropper's low-resolution view.")
@click.option("--width", type=FiniteRange(0, min_open=True), default=None, help="Channel multiplier.")
@click.option("--blocks", type=click.IntRange(1), default=None, help="Bottleneck blocks per stage (default 2).")
@click.option("--epochs", type=click.IntRange(1), default=CROPPER_EPOCHS, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=FiniteRange(0, min_open=True), default=CROPPER_LEARNING_RATE, show_default=True)
@seed_option()
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where CAM boxes are cached (default: $XDG_CACHE_HOME/tfscissor).",
)
@keras_output
@click.pass_obj
def crop_train(
    settings,
    data_spec,
    classifier_path,
    resolution,
    labels,
    loss,
    view,
    width,
    blocks,
    epochs,
    batch_size,
    lr,
    seed,
    cache_dir,
    output,
):
    """Train a cropper on the data's boxes or on Grad-CAM pseudo-boxes of a classifier."""
    check_not_input(keras_output_path(output), classifier_path)
    classifier = load_model(classifier_path) if classifier_path else None
    dataset = load_data(data_spec)
    options = {k: v for k, v in {"view": view, "width": width, "blocks": blocks}.items() if v is not None}
    with _cam_progress(settings, dataset, labels) as bar:
        result = train_cropper_stage(
            dataset,
            classifier=classifier,
            resolution=resolution,
            labels=labels,
            cache_dir=cache_dir,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=lr,
            loss=loss,
            cropper_options=options,
            seed=seed,
            callbacks=settings.callbacks("crop train"),
            progress=bar,
        )
    save_model(result.model, output)
    report = result.report
    for line in cropper_lines(report):
        click.echo(line)
    click.echo(f"val boxes against the labels: {_box_line(report['val'])}")
    gain = report["late_iou_gain"]
    if gain is not None and gain >= STILL_IMPROVING:
        click.echo(
            f"the box was still improving when training ended (val IoU {gain:+.3f} over the last "
            f"{min(LATE_EPOCHS, epochs - 1)} epochs): more --epochs than {epochs} may box better"
        )
    if "truth" in report:
        click.echo(f"val boxes against the true boxes: {_box_line(report['truth'])}")
        click.echo(f"CAM labels against the true boxes: {_box_line(report['labels_vs_truth'])}")
    click.echo(f"saved {output}")


@crop.command(name="eval")
@click.option("--cropper", "cropper_path", type=click.Path(dir_okay=False), required=True, help=".keras or .tflite")
@click.option(
    "--classifier", "classifier_path", type=click.Path(dir_okay=False), required=True, help=".keras or .tflite"
)
@data_option()
@click.option("--resolution", type=click.IntRange(8), default=None, help="Run a .keras classifier at this input size.")
@policy_options
@json_option
@click.pass_obj
def crop_eval(settings, cropper_path, classifier_path, data_spec, resolution, scales, margin, as_json):
    """Accuracy, box quality and MACs of crop-then-classify on the validation split."""
    pipeline = load_two_stage(cropper_path, classifier_path, resolution, crop_policy(scales, margin))
    dataset = load_data(data_spec, image_size=pipeline.image_shape[:2])
    report = pipeline.evaluate(dataset.val)
    report.update(data=dataset.spec, cropper=cropper_path, classifier=classifier_path)
    emit(as_json, report, pipeline_lines(report, "crop-then-classify"))


@crop.command(name="finetune")
@click.option("--cropper", "cropper_path", type=click.Path(dir_okay=False), required=True, help="A .keras cropper.")
@click.option(
    "--classifier", "classifier_path", type=click.Path(dir_okay=False), required=True, help="A .keras classifier."
)
@data_option()
@click.option("--resolution", type=click.IntRange(8), required=True, help="The classifier's new input size.")
@click.option(
    "--labels",
    type=click.Choice(LABEL_SOURCES),
    default="auto",
    show_default=True,
    help="True boxes to jitter: the data's, or Grad-CAM pseudo-boxes of the classifier.",
)
@click.option(
    "--mix",
    type=FiniteRange(0, 1),
    default=0.5,
    show_default=True,
    help="Share of crops at the cropper's boxes; the rest at jittered true boxes.",
)
@policy_options
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=FiniteRange(0, min_open=True), default=1e-3, show_default=True)
@seed_option()
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Where CAM boxes are cached.")
@click.option(
    "--no-distill", is_flag=True, help="Fine-tune on the labels alone, not also on the whole-image classifier."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .keras classifier.")
@click.pass_obj
def crop_finetune(
    settings,
    cropper_path,
    classifier_path,
    data_spec,
    resolution,
    labels,
    mix,
    scales,
    margin,
    epochs,
    batch_size,
    lr,
    seed,
    cache_dir,
    no_distill,
    output,
):
    """Fine-tune a classifier at a new resolution on the crops the cropper really produces, distilled from the
    classifier as it is (seeing whole images)."""
    check_not_input(keras_output_path(output), cropper_path, classifier_path)
    for path, role in ((cropper_path, "cropper"), (classifier_path, "classifier")):
        if not path.endswith(".keras"):
            raise UsageError(f"{role} {path} must be a .keras model to fine-tune with")
    cropper = load_stage_model(cropper_path, "cropper")
    check_cropper(cropper, cropper_path)
    original = load_model(classifier_path)
    dataset = load_data(data_spec, image_size=tuple(cropper.input_shape[1:3]))
    with _cam_progress(settings, dataset, labels) as bar:
        truth = box_labels(dataset, labels, original, cache_dir, progress=bar)
    result = finetune_on_crops(
        cropper,
        original,
        dataset,
        resolution=resolution,
        truth=truth.train,
        mix=mix,
        policy=crop_policy(scales, margin),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        seed=seed,
        callbacks=settings.callbacks("fine-tune"),
        names=(cropper_path, classifier_path),
        distill=not no_distill,
    )
    save_model(result.model, output)
    old, new = result.before, result.after
    click.echo(
        f"crop-then-classify at {resolution} px: accuracy {old['accuracy']:.4f} before, {new['accuracy']:.4f} after; "
        f"{new['fallbacks']} whole-image fallbacks of {new['samples']}"
    )
    click.echo(f"saved {output}")
