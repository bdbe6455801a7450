"""The ``tfscissor`` command line: one thin command per stage, each calling one library function.

Heavy imports (TensorFlow, Keras, LiteRT) happen inside the commands, so ``tfscissor --help`` is instant.
"""

import errno
import json
import logging
import math
import os
import re
import sys
from pathlib import Path

import click

from tfscissor.errors import TfscissorError, UsageError

DEFAULT_DATA = "cluttered"

# tfscissor.compile.boards.BOARDS, spelled out: importing tfscissor.compile would slow every command's start.
BOARD_NAMES = ("esp32s3", "nano33ble", "rp2040", "stm32h7")


class FiniteRange(click.FloatRange):
    """A number in a range that is also finite: click's own range lets "nan" through (every comparison with
    NaN is false), and a NaN learning rate trains a model of NaNs."""

    name = "finite number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Settings:
    def __init__(self, debug=False, quiet=False):
        self.debug = debug
        self.quiet = quiet

    @property
    def progress(self):
        return not self.quiet

    def callbacks(self, desc="train"):
        if self.quiet:
            return []
        from tfscissor.models.callbacks import EpochProgress

        return [EpochProgress(desc)]


# What the file system says when an output cannot be written, and what the user can do about it.
_WRITE_ERRNOS = {
    errno.ENOSPC: "free some space, or write the output elsewhere (-o)",
    errno.EDQUOT: "free some of your quota, or write the output elsewhere (-o)",
    errno.EROFS: "the file system is read-only: write the output elsewhere (-o)",
    errno.EACCES: "you may not write there: write the output elsewhere (-o)",
}


class _Group(click.Group):
    """Turns tfscissor's errors into one line and an exit code; ``--debug`` shows the traceback instead."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except TfscissorError as err:
            if ctx.params.get("debug"):
                raise
            raise _OneLine(str(err), err.exit_code) from None
        except Exception as err:
            if ctx.params.get("debug"):
                raise
            if isinstance(err, OSError) and err.errno in _WRITE_ERRNOS:
                where = f"{err.filename}: " if err.filename else ""
                raise _OneLine(f"cannot write {where}{err.strerror}: {_WRITE_ERRNOS[err.errno]}", 1) from None
            detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise _OneLine(
                f"internal error: {type(err).__name__}: {detail} (rerun with --debug for the traceback)", 1
            ) from None


class _OneLine(click.ClickException):
    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and native library logs.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.version_option(package_name="tfscissor")
@click.pass_context
def cli(ctx, debug, quiet):
    """Make Keras image classifiers small and fast for microcontrollers and the Coral Edge TPU.

    \b
    A whole pipeline on the embedded data:
      tfscissor run recipes/demo.yaml
    Or stage by stage:
      tfscissor train --data cluttered --model plain -o model.keras
      tfscissor trim model.keras --data cluttered --ratio 0.5 -o trimmed.keras
      tfscissor quantize trimmed.keras --data cluttered -o trimmed.tflite
      tfscissor compile trimmed.tflite --target tflm -o trimmed_fw/
      tfscissor bench trimmed.tflite --device cpu
    """
    ctx.obj = Settings(debug=debug, quiet=quiet)


# -- shared option helpers ---------------------------------------------------------------------------------


def _check_data(ctx, param, value):
    # While the options are parsed: a mistyped spec or a missing folder is reported before anything loads.
    from tfscissor.data.spec import check_data_spec

    if value is not None:
        check_data_spec(value)
    return value


def _data_option(required=False):
    return click.option(
        "--data",
        "data_spec",
        default=None if required else DEFAULT_DATA,
        required=required,
        show_default=not required,
        callback=_check_data,
        help="Data spec: cluttered[:key=value,...], folder:PATH, idx:PATH or tfds:NAME.",
    )


def _parse_args(pairs):
    """``KEY=VALUE`` pairs to a dict; values are YAML (``widths=[16,32]``, ``dropout=0.1``, ``block=basic``)."""
    import yaml

    args = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--arg {pair!r} is not KEY=VALUE: write for example --arg 'widths=[16,32,64]'")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UsageError(f"--arg {pair!r}: the value is not valid YAML ({str(err).splitlines()[0]})") from err
        args[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return args


def _load_data(spec, image_size=None):
    from tfscissor.data import load_data

    return load_data(spec, image_size=image_size)


def _load_keras(path):
    from tfscissor.models import load_model

    return load_model(path)


def _emit(as_json, payload, lines):
    if as_json:
        click.echo(json.dumps(payload, indent=None, sort_keys=True))
    else:
        for line in lines:
            click.echo(line)


def _format_table(rows, columns):
    """Rows of dicts to an aligned plain-text table; numbers right-aligned."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) or row.get(c) is None for row in rows) for c in columns]

    def fmt(values):
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return [fmt(columns), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)]


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- commands ----------------------------------------------------------------------------------------------


@cli.command()
@_data_option()
@click.option(
    "--model",
    "model_name",
    default="plain",
    show_default=True,
    help="Builder (plain, resnet, mobilenetv2) or keras.applications name.",
)
@click.option(
    "--arg", "model_args", multiple=True, metavar="KEY=VALUE", help="Builder argument, YAML value; repeatable."
)
@click.option("--image-size", type=click.IntRange(8, 4096), default=None, help="Resize images to this square size.")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=FiniteRange(0, min_open=True), default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .keras file.")
@click.pass_obj
def train(settings, data_spec, model_name, model_args, image_size, epochs, batch_size, lr, seed, output):
    """Train a classifier from a builder on a data set.

    \b
    Example:
      tfscissor train --data cluttered --model resnet --arg 'blocks=[1,1,1]' --epochs 5 -o model.keras
    """
    from tfscissor.models import build_model, save_model
    from tfscissor.models.training import evaluate_classifier, train_classifier

    if not output.endswith(".keras"):
        raise UsageError(f"output {output} must end in .keras")
    dataset = _load_data(data_spec, image_size)
    try:
        model = build_model(model_name, dataset.image_shape, dataset.num_classes, seed=seed, **_parse_args(model_args))
    except TypeError as err:
        raise UsageError(f"bad --arg for model {model_name!r}: {err}") from err
    train_classifier(
        model,
        dataset,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        seed=seed,
        callbacks=settings.callbacks(),
    )
    save_model(model, output)
    click.echo(f"val accuracy {evaluate_classifier(model, dataset.val):.4f}; saved {output}")


@cli.command(name="eval")
@click.argument("model_path", type=click.Path(dir_okay=False))
@_data_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def evaluate(settings, model_path, data_spec, as_json):
    """Accuracy of a .keras or .tflite classifier on the validation split of a data set.

    \b
    Example:
      tfscissor eval model.tflite --data cluttered --json
    """
    from tfscissor.model_files import evaluate_file

    result = evaluate_file(model_path, data_spec)
    _emit(
        as_json,
        result,
        [f"{model_path}: accuracy {result['accuracy']:.4f} on {result['samples']} images of {result['data']}"],
    )


@cli.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def info(settings, model_path, as_json):
    """Per-layer MACs, parameters and activations of a .keras model, or the ops and tensors of a .tflite.

    \b
    Example:
      tfscissor info model.keras --json
    """
    from tfscissor.model_files import describe_file

    result = describe_file(model_path)
    lines = _keras_info_lines(result) if result["format"] == "keras" else _tflite_info_lines(result)
    _emit(as_json, result, lines)


@cli.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@_data_option()
@click.option(
    "--criterion",
    default="taylor",
    show_default=True,
    help="Channel score: taylor (the loss change where the channel is read; needs labels), relevance (the paper's "
    "mean activation), apoz, l1 or random.",
)
@click.option("--raw", is_flag=True, help="relevance without the per-layer normalisation.")
@click.option(
    "--allocation",
    type=click.Choice(["global", "sensitivity"]),
    default="global",
    show_default=True,
    help="global: one ranking of all channels; sensitivity: measure each layer's loss as it loses channels first.",
)
@click.option(
    "--max-layer-ratio",
    type=FiniteRange(0, 1, min_open=True),
    default=0.75,
    show_default=True,
    help="The largest fraction of one layer's channels the trim may remove.",
)
@click.option("--no-protect-stem", is_flag=True, help="Also trim the channels of the layers that read the input.")
@click.option(
    "--steps",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Surgeries per round, each re-measured on the partly trimmed model.",
)
@click.option("--no-distill", is_flag=True, help="Fine-tune on the labels alone, not also on the untrimmed model.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample, the fine-tune and random.")
@click.option(
    "--ratio",
    type=FiniteRange(),
    default=None,
    help="Fraction of all prunable channels to remove, lowest scores first.",
)
@click.option(
    "--min-relevance",
    type=FiniteRange(),
    default=None,
    help="Remove channels scoring at or below this (0: dead channels only).",
)
@click.option("--target-macs", type=FiniteRange(), default=None, help="Keep this fraction of the MACs (e.g. 0.5).")
@click.option("--target-params", type=FiniteRange(), default=None, help="Keep this fraction of the parameters.")
@click.option(
    "--rounds",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Trim, fine-tune and re-measure this many times to reach the policy.",
)
@click.option(
    "--round-to",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Keep a multiple of this many channels per layer.",
)
@click.option(
    "--min-channels",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Keep at least this many channels per layer.",
)
@click.option("--exclude", multiple=True, metavar="LAYER", help="Layer whose output channels must stay; repeatable.")
@click.option(
    "--samples",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    help="Representative images for the statistics.",
)
@click.option(
    "--fine-tune-epochs",
    "--finetune-epochs",
    "fine_tune_epochs",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Epochs of fine-tuning after each round.",
)
@click.option(
    "--lr", type=FiniteRange(0, min_open=True), default=5e-4, show_default=True, help="Fine-tuning learning rate."
)
@click.option(
    "--save-stats", type=click.Path(dir_okay=False), default=None, help="Also write the activation statistics (.npz)."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .keras file.")
@click.pass_obj
def trim(
    settings,
    model_path,
    data_spec,
    criterion,
    raw,
    allocation,
    max_layer_ratio,
    no_protect_stem,
    steps,
    no_distill,
    seed,
    ratio,
    min_relevance,
    target_macs,
    target_params,
    rounds,
    round_to,
    min_channels,
    exclude,
    samples,
    fine_tune_epochs,
    lr,
    save_stats,
    output,
):
    """Remove low-relevance channels for real, giving a smaller dense model.

    \b
    Give one policy: --min-relevance, --ratio, --target-macs or --target-params.

    \b
    Examples:
      tfscissor trim model.keras --data cluttered --ratio 0.4 --round-to 4 --fine-tune-epochs 2 -o trimmed.keras
      tfscissor trim model.keras --data cluttered --target-macs 0.5 --rounds 2 --fine-tune-epochs 2 -o half.keras
    """
    from tfscissor.trim.criteria import get_criterion

    # Checked before the long work (and before TensorFlow loads), not after it.
    get_criterion(criterion)
    from tfscissor.io import check_not_input
    from tfscissor.models import save_model

    if not output.endswith(".keras"):
        raise UsageError(f"output {output} must end in .keras")
    check_not_input(output, model_path)
    if save_stats:
        check_not_input(save_stats, model_path, output)
    model = _load_keras(model_path)
    from tfscissor.trim.stage import trim_and_fine_tune

    result = trim_and_fine_tune(
        model,
        _load_data(data_spec, tuple(model.input_shape[1:3])),
        criterion=criterion,
        criterion_options={"normalize": False} if raw else None,
        allocation=allocation,
        max_layer_ratio=max_layer_ratio,
        protect_stem=not no_protect_stem,
        steps=steps,
        distill=not no_distill,
        seed=seed,
        ratio=ratio,
        min_relevance=min_relevance,
        target_macs=target_macs,
        target_params=target_params,
        rounds=rounds,
        round_to=round_to,
        min_channels=min_channels,
        exclude=exclude,
        samples=samples,
        fine_tune_epochs=fine_tune_epochs,
        learning_rate=lr,
        callbacks=settings.callbacks("fine-tune"),
        progress=settings.progress,
    )
    save_model(result.model, output)
    if save_stats:
        result.statistics.save(save_stats)
    report = result.report
    for line in _format_table(report["layers"], ["layer", "producers", "before", "after"]):
        click.echo(line)
    for line in _format_table(_before_after(report), ["", "before", "after", "ratio"]):
        click.echo(line)
    for line in trim_summary(report):
        click.echo(line)
    if "costliest_groups" in report:
        click.echo(collapse_warning(report), err=True)
    click.echo(f"saved {output}")


def trim_summary(report):
    """The accuracy straight after surgery and after fine-tuning, so a user sees what each did."""
    lines = [f"accuracy: {report['accuracy_before']:.4f} before, {report['accuracy_trimmed']:.4f} after surgery"]
    if report["fine_tune_epochs"]:
        how = " with distillation" if report["distill"] else ""
        lines[0] += f", {report['accuracy_after']:.4f} after {report['fine_tune_epochs']} epochs of fine-tuning{how}"
    return lines


def collapse_warning(report):
    """One line: surgery alone lost more than half the accuracy, and the groups whose trim alone cost most."""
    groups = ", ".join(f"{name} (+{increase:.2f} loss)" for name, increase in report["costliest_groups"])
    return (
        f"warning: surgery alone kept {report['accuracy_trimmed'] / report['accuracy_before']:.0%} of the accuracy "
        f"({report['accuracy_trimmed']:.4f} of {report['accuracy_before']:.4f}); costliest groups: {groups}; keep "
        "them with --exclude LAYER, or trim less (more --steps, a lower --max-layer-ratio)"
    )


def _before_after(report):
    rows = []
    for name, key in (("MACs", "macs"), ("params", "params"), ("accuracy", "accuracy")):
        before, after = report[f"{key}_before"], report[f"{key}_after"]
        ratio = f"{after / before:.2f}x" if key != "accuracy" else f"{after - before:+.4f}"
        rows.append({"": name, "before": before, "after": after, "ratio": ratio})
    return rows


def _int_list(text, option):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of integers: e.g. 0,1,2") from None


def _float_list(text, option):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of numbers: e.g. 1,0.75,0.5") from None


@cli.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@_data_option()
@click.option(
    "--budget",
    required=True,
    help="Limits, e.g. macs=0.5,arena=256KiB (axes: macs, params, bytes, arena, latency); fractions are of the "
    "model's own costs, and with --cropper the limits hold cropper and classifier together.",
)
@click.option(
    "--cropper", "cropper_path", type=click.Path(dir_okay=False), default=None, help="Search on this cropper's crops."
)
@click.option(
    "--search",
    "method",
    type=click.Choice(["refine", "grid"]),
    default="refine",
    show_default=True,
    help="grid: the combinations of --depths, --widths and --resolutions; refine: then the width of the four "
    "best-scored (depth, resolution) pairs bisected to the edge of the budget.",
)
@click.option("--depths", default="0,1,2", show_default=True, help="Residual blocks to remove, lowest score first.")
@click.option(
    "--depth-criterion",
    type=click.Choice(["relevance", "bypass"]),
    default="relevance",
    show_default=True,
    help="Block score: relevance (branch over shortcut activations) or bypass (loss increase when removed).",
)
@click.option("--widths", default="1,0.75,0.5", show_default=True, help="Fractions of MACs width trimming keeps.")
@click.option("--resolutions", default=None, help="Input sides to try (default: the model's own).")
@click.option(
    "--calibration",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Images for statistics and batch norm.",
)
@click.option(
    "--score",
    type=click.Choice(["bn", "tune"]),
    default="bn",
    show_default=True,
    help="Candidate score: bn (accuracy after batch-norm re-estimation) or tune (also one epoch on 1,024 images).",
)
@click.option("--top", type=click.IntRange(1), default=2, show_default=True, help="Candidates fine-tuned in full.")
@click.option("--fine-tune-epochs", type=click.IntRange(0), default=1, show_default=True)
@click.option("--lr", type=FiniteRange(0, min_open=True), default=1e-3, show_default=True)
@click.option(
    "--resume", type=click.Path(dir_okay=False), default=None, help="JSON file of measured candidates to continue from."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .keras file.")
@click.pass_obj
def shrink(
    settings,
    model_path,
    data_spec,
    budget,
    cropper_path,
    method,
    depths,
    depth_criterion,
    widths,
    resolutions,
    calibration,
    score,
    top,
    fine_tune_epochs,
    lr,
    resume,
    output,
):
    """Shrink depth, width and resolution together to fit a budget.

    \b
    Example:
      tfscissor shrink model.keras --data cluttered --budget macs=0.5 --resolutions 64,48 -o small.keras
    """
    from tfscissor.io import check_not_input
    from tfscissor.models import save_model
    from tfscissor.progress import note
    from tfscissor.shrink import parse_budget, resized, search

    if not output.endswith(".keras"):
        raise UsageError(f"output {output} must end in .keras")
    check_not_input(output, model_path, cropper_path, resume)
    limits = parse_budget(budget)
    model = _load_keras(model_path)
    beside = None
    if cropper_path is not None:
        from tfscissor.crop.pipeline import cropped
        from tfscissor.crop.stage import check_cropper, load_stage_model
        from tfscissor.shrink import measure_costs

        cropper = load_stage_model(cropper_path, "cropper")
        check_cropper(cropper, cropper_path)
        dataset = _load_data(data_spec, tuple(cropper.input_shape[1:3]))
        # The budget holds the whole pipeline: the cropper's cost is added to every candidate's.
        beside = measure_costs(cropper, [limit.axis for limit in limits], dataset.train.images[:calibration])
        data_at = cropped(dataset, cropper)
    else:
        data_at = resized(_load_data(data_spec))
    result = search(
        model,
        data_at,
        limits,
        depths=_int_list(depths, "--depths"),
        widths=_float_list(widths, "--widths"),
        resolutions=_int_list(resolutions, "--resolutions") if resolutions else None,
        refine_steps=3 if method == "refine" else 0,
        depth_criterion=depth_criterion,
        beside=beside,
        calibration=calibration,
        score=score,
        top=top,
        fine_tune_epochs=fine_tune_epochs,
        learning_rate=lr,
        resume=resume,
        progress=lambda row: note(f"candidate {row['candidate']}: {_shrink_row(row)}", settings.progress),
        callbacks=settings.callbacks("fine-tune"),
    )
    save_model(result.model, output)
    rows = [
        {
            "candidate": r["candidate"],
            "stage": r["stage"],
            **r.get("costs", {}),
            "fits": "yes" if r["feasible"] else "no",
            "score": r.get("score"),
            "accuracy": r.get("accuracy"),
        }
        for r in result.rows
    ]
    axes = [limit.axis for limit in limits]
    for line in _format_table(rows, ["candidate", "stage", *axes, "fits", "score", "accuracy"]):
        click.echo(line)
    chosen = next(r for r in result.rows if r["candidate"] == str(result.candidate))
    costs = ", ".join(
        f"{axis} {_cell(chosen['costs'][axis])} ({chosen['costs'][axis] / result.original[axis]:.0%})" for axis in axes
    )
    click.echo(f"chosen {result.candidate}: {costs}; accuracy {chosen['accuracy']:.4f}")
    click.echo(f"saved {output}")


def _shrink_row(row):
    if "costs" not in row:
        return row.get("skipped", "")
    costs = ", ".join(f"{axis} {_cell(value)}" for axis, value in row["costs"].items())
    return f"{costs}; " + (f"score {row['score']:.4f}" if row["feasible"] else "over budget")


# -- crop: the cropper and the two-stage pipeline -----------------------------------------------------------


def _policy(scales, margin):
    from tfscissor.deploy.crop_policy import CropPolicy

    if scales.strip().lower() == "off":
        return CropPolicy(scales=None, margin=margin)
    try:
        values = tuple(float(v) for v in scales.split(","))
    except ValueError:
        raise UsageError(
            f"--scales {scales!r} is not a comma-separated list of fractions: e.g. 0.25,0.5,0.75,1.0 or off"
        ) from None
    try:
        return CropPolicy(scales=values, margin=margin)
    except UsageError as err:
        raise UsageError(f"--scales {scales}: {err}") from None


def _policy_options(command):
    command = click.option(
        "--margin",
        type=FiniteRange(0, min_open=True),
        default=1.0,
        show_default=True,
        help="Multiply the box's side by this before cropping.",
    )(command)
    return click.option(
        "--scales",
        default="0.25,0.5,0.75,1.0",
        show_default=True,
        help="Crop sides as fractions of the image side (the smallest covering the box is used), or 'off'.",
    )(command)


def _box_line(boxes):
    line = f"{boxes['degenerate']} degenerate of {boxes['boxes']}"
    if "mean_iou" in boxes:
        line = f"mean IoU {boxes['mean_iou']:.3f}, {boxes['iou_above_0_5']:.1%} above 0.5, " + line
    return line


def _pipeline_lines(report, label):
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


def _cam_progress(settings, dataset, labels):
    """A bar for Grad-CAM labelling, shown only when the labels will be CAM boxes."""
    from tfscissor.progress import progress_bar

    uses_cam = labels == "cam" or (labels == "auto" and not dataset.has_boxes)
    total = len(dataset.train) + len(dataset.val)
    return progress_bar(total=total, desc="CAM boxes", unit="img", enabled=settings.progress and uses_cam)


@cli.group()
def crop():
    """The cropper (a tiny box predictor) and the crop-then-classify pipeline.

    \b
    Example:
      tfscissor crop train --data cluttered --classifier model.keras -o cropper.keras
      tfscissor crop finetune --cropper cropper.keras --classifier model.keras --resolution 32 -o model32.keras
      tfscissor crop eval --cropper cropper.keras --classifier model32.keras
    """


@crop.command(name="train")
@_data_option()
@click.option(
    "--classifier",
    "classifier_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The classifier the cropper serves: sizes the cropper (at most 5% of its MACs) and gives CAM labels.",
)
@click.option(
    "--labels",
    type=click.Choice(["auto", "boxes", "cam"]),
    default="auto",
    show_default=True,
    help="Box labels: the data's boxes, Grad-CAM pseudo-boxes of --classifier, or boxes where the data has them.",
)
@click.option("--loss", type=click.Choice(["mse", "giou"]), default="mse", show_default=True)
@click.option("--view", type=click.IntRange(8), default=None, help="Side of the cropper's low-resolution view.")
@click.option("--width", type=FiniteRange(0, min_open=True), default=None, help="Channel multiplier.")
@click.option("--blocks", type=click.IntRange(1), default=None, help="Bottleneck blocks per stage (default 2).")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=FiniteRange(0, min_open=True), default=5e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where CAM boxes are cached (default: $XDG_CACHE_HOME/tfscissor).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .keras file.")
@click.pass_obj
def crop_train(
    settings,
    data_spec,
    classifier_path,
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
    from tfscissor.crop.stage import train_cropper_stage
    from tfscissor.io import check_not_input
    from tfscissor.models import save_model

    if not output.endswith(".keras"):
        raise UsageError(f"output {output} must end in .keras")
    check_not_input(output, classifier_path)
    classifier = _load_keras(classifier_path) if classifier_path else None
    dataset = _load_data(data_spec)
    options = {k: v for k, v in {"view": view, "width": width, "blocks": blocks}.items() if v is not None}
    with _cam_progress(settings, dataset, labels) as bar:
        result = train_cropper_stage(
            dataset,
            classifier=classifier,
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
    share = f" ({report['share']:.1%} of the classifier's)" if "share" in report else ""
    click.echo(f"cropper: {report['macs']:,} MACs{share}, trained on {report['labels']} labels")
    click.echo(f"val boxes against the labels: {_box_line(report['val'])}")
    if "truth" in report:
        click.echo(f"val boxes against the true boxes: {_box_line(report['truth'])}")
        click.echo(f"CAM labels against the true boxes: {_box_line(report['labels_vs_truth'])}")
    click.echo(f"saved {output}")


@crop.command(name="eval")
@click.option("--cropper", "cropper_path", type=click.Path(dir_okay=False), required=True, help=".keras or .tflite")
@click.option(
    "--classifier", "classifier_path", type=click.Path(dir_okay=False), required=True, help=".keras or .tflite"
)
@_data_option()
@click.option("--resolution", type=click.IntRange(8), default=None, help="Run a .keras classifier at this input size.")
@_policy_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def crop_eval(settings, cropper_path, classifier_path, data_spec, resolution, scales, margin, as_json):
    """Accuracy, box quality and MACs of crop-then-classify on the validation split."""
    from tfscissor.crop.stage import load_two_stage

    pipeline = load_two_stage(cropper_path, classifier_path, resolution, _policy(scales, margin))
    dataset = _load_data(data_spec, pipeline.image_shape[:2])
    report = pipeline.evaluate(dataset.val)
    report.update(data=dataset.spec, cropper=cropper_path, classifier=classifier_path)
    _emit(as_json, report, _pipeline_lines(report, "crop-then-classify"))


@crop.command(name="finetune")
@click.option("--cropper", "cropper_path", type=click.Path(dir_okay=False), required=True, help="A .keras cropper.")
@click.option(
    "--classifier", "classifier_path", type=click.Path(dir_okay=False), required=True, help="A .keras classifier."
)
@_data_option()
@click.option("--resolution", type=click.IntRange(8), required=True, help="The classifier's new input size.")
@click.option(
    "--labels",
    type=click.Choice(["auto", "boxes", "cam"]),
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
@_policy_options
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--lr", type=FiniteRange(0, min_open=True), default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Where CAM boxes are cached.")
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
    output,
):
    """Fine-tune a classifier at a new resolution on the crops the cropper really produces."""
    from tfscissor.crop.pipeline import TwoStage, train_on_crops
    from tfscissor.crop.stage import box_labels, check_cropper, load_stage_model
    from tfscissor.crop.training import predict_boxes
    from tfscissor.io import check_not_input
    from tfscissor.models import save_model
    from tfscissor.models.graph import with_input_size

    if not output.endswith(".keras"):
        raise UsageError(f"output {output} must end in .keras")
    check_not_input(output, cropper_path, classifier_path)
    for path, role in ((cropper_path, "cropper"), (classifier_path, "classifier")):
        if not path.endswith(".keras"):
            raise UsageError(f"{role} {path} must be a .keras model to fine-tune with")
    policy, names = _policy(scales, margin), (cropper_path, classifier_path)
    cropper = load_stage_model(cropper_path, "cropper")
    check_cropper(cropper, cropper_path)
    original = _load_keras(classifier_path)
    before = TwoStage(cropper, with_input_size(original, resolution), policy, names)
    dataset = _load_data(data_spec, before.image_shape[:2])
    with _cam_progress(settings, dataset, labels) as bar:
        truth = box_labels(dataset, labels, original, cache_dir, progress=bar)
    val_boxes = predict_boxes(cropper, dataset.val.images)
    model, _ = train_on_crops(
        original,
        dataset,
        resolution=resolution,
        predicted=predict_boxes(cropper, dataset.train.images),
        truth=truth.train,
        val_boxes=val_boxes,
        mix=mix,
        policy=policy,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        seed=seed,
        callbacks=settings.callbacks("fine-tune"),
    )
    save_model(model, output)
    old = before.evaluate(dataset.val, val_boxes, macs=False)
    new = TwoStage(cropper, model, policy, names).evaluate(dataset.val, val_boxes, macs=False)
    click.echo(
        f"crop-then-classify at {resolution} px: accuracy {old['accuracy']:.4f} before, {new['accuracy']:.4f} after; "
        f"{new['fallbacks']} whole-image fallbacks of {new['samples']}"
    )
    click.echo(f"saved {output}")


# Quantisation-aware training's defaults: a short fine-tune at a tenth of training's rate, which moves a
# trained model to fit the int8 grid without forgetting (bench/quantize_qat.py).
QAT_EPOCHS = 3
QAT_LEARNING_RATE = 1e-4


@cli.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@_data_option()
@click.option(
    "--samples", type=click.IntRange(1), default=200, show_default=True, help="Representative images for calibration."
)
@click.option(
    "--cropper",
    "cropper_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A .keras cropper: quantise both stages and measure crop-then-classify.",
)
@click.option(
    "--cropper-output",
    type=click.Path(dir_okay=False),
    default=None,
    help="The cropper's .tflite (default: OUTPUT with .cropper.tflite).",
)
@click.option(
    "--qat",
    is_flag=True,
    help="Quantisation-aware training: fine-tune with fake quantisation (tfmot), then convert; for when "
    "post-training quantisation loses too much accuracy.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=None,
    help=f"With --qat: training epochs on the train split [default: {QAT_EPOCHS}].",
)
@click.option(
    "--lr",
    type=FiniteRange(0, min_open=True),
    default=None,
    help=f"With --qat: Adam's learning rate, decayed to 0 (cosine) [default: {QAT_LEARNING_RATE:g}].",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .tflite file.")
@click.pass_obj
def quantize(settings, model_path, data_spec, samples, cropper_path, cropper_output, qat, epochs, lr, output):
    """Full-int8 quantisation, post-training or with --qat; prints float and int8 accuracy.

    \b
    Examples:
      tfscissor quantize trimmed.keras --data cluttered -o trimmed.tflite
      tfscissor quantize trimmed.keras --data cluttered --qat --epochs 3 -o trimmed.tflite
      tfscissor quantize model32.keras --cropper cropper.keras --data cluttered -o model32.tflite
    """
    from tfscissor.io import check_not_input, write_bytes

    if not output.endswith(".tflite"):
        raise UsageError(f"output {output} must end in .tflite")
    check_not_input(output, model_path, cropper_path)
    if cropper_output is not None and cropper_path is None:
        raise UsageError("--cropper-output needs --cropper: give the .keras cropper to quantise with the classifier")
    if not qat and (epochs is not None or lr is not None):
        raise UsageError("--epochs and --lr need --qat: add --qat to fine-tune with quantisation-aware training")
    if qat and cropper_path is not None:
        # The classifier of a pipeline sees the int8 cropper's crops; training it on them is not built yet.
        raise UsageError(
            "--qat quantises one classifier, not a two-stage pipeline: drop --cropper, or drop --qat to quantise "
            "both stages post-training"
        )
    if cropper_path is not None:
        return _quantize_pipeline(model_path, cropper_path, data_spec, samples, output, cropper_output)
    model = _load_keras(model_path)
    dataset = _load_data(data_spec, tuple(model.input_shape[1:3]))
    if qat:
        from tfscissor.quantize import quantize_model_qat

        result = quantize_model_qat(
            model,
            dataset,
            epochs or QAT_EPOCHS,
            learning_rate=lr or QAT_LEARNING_RATE,
            num_samples=samples,
            callbacks=settings.callbacks("QAT"),
        )
    else:
        from tfscissor.quantize import quantize_model

        result = quantize_model(model, dataset, num_samples=samples)
    write_bytes(output, result.tflite)
    (in_scale, in_zero), (out_scale, out_zero) = result.input_quantization, result.output_quantization
    if qat:
        click.echo(
            f"accuracy float {result.float_accuracy:.4f}, PTQ int8 {result.ptq_int8_accuracy:.4f}, "
            f"QAT int8 {result.int8_accuracy:.4f} (fake-quant before conversion {result.fake_quant_accuracy:.4f})"
        )
    else:
        click.echo(f"accuracy float {result.float_accuracy:.4f}, int8 {result.int8_accuracy:.4f}")
    click.echo(
        f"input int8 = round(pixel / {in_scale:.6g}) + {in_zero}; output score = (int8 - {out_zero}) * {out_scale:.6g}"
    )
    click.echo(f"saved {output} ({len(result.tflite):,} bytes)")


def _quantize_pipeline(model_path, cropper_path, data_spec, samples, output, cropper_output):
    from tfscissor.crop.stage import load_two_stage, quantize_pipeline
    from tfscissor.io import check_not_input, write_bytes

    cropper_output = cropper_output or str(Path(output).with_suffix(".cropper.tflite"))
    if not cropper_output.endswith(".tflite") or Path(cropper_output).resolve() == Path(output).resolve():
        raise UsageError(f"--cropper-output {cropper_output} must be a .tflite path other than {output}")
    check_not_input(cropper_output, model_path, cropper_path)
    for path, role in ((cropper_path, "cropper"), (model_path, "classifier")):
        if not path.endswith(".keras"):
            raise UsageError(f"{role} {path} must be a .keras model to quantise")
    pipeline = load_two_stage(cropper_path, model_path)
    dataset = _load_data(data_spec, pipeline.image_shape[:2])
    result = quantize_pipeline(pipeline, dataset, num_samples=samples)
    write_bytes(cropper_output, result.cropper)
    write_bytes(output, result.classifier)
    for line in _pipeline_lines(result.float_report, "float crop-then-classify"):
        click.echo(line)
    for line in _pipeline_lines(result.int8_report, "int8 crop-then-classify (LiteRT)"):
        click.echo(line)
    click.echo(
        f"saved {output} ({len(result.classifier):,} bytes) and {cropper_output} ({len(result.cropper):,} bytes)"
    )


@cli.command(name="compile")
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option(
    "--target",
    type=click.Choice(["tflite", "edgetpu", "tflm"]),
    required=True,
    help="tflite: the int8 models and a manifest; edgetpu: also the predicted Edge TPU mapping and, with Coral's "
    "compiler, the compiled models; tflm: a TensorFlow Lite Micro firmware project.",
)
@click.option(
    "--labels", default=None, help="Class names, comma-separated, or a file with one per line (default: 0..N-1)."
)
@click.option("--name", default=None, help="C identifier of the model in the firmware (default: from the file name).")
@click.option(
    "--cropper",
    "cropper_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The cropper's int8 .tflite: the two models and the crop policy make one pipeline.",
)
@click.option(
    "--compiler",
    type=click.Path(dir_okay=False),
    default=None,
    help="edgetpu: the edgetpu_compiler to run (default: the one on PATH).",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 86_400),
    default=180,
    show_default=True,
    help="edgetpu: seconds the compiler may search (its --timeout_sec); tfscissor stops it a minute after.",
)
@click.option(
    "--board",
    type=click.Choice(BOARD_NAMES),
    default=None,
    help="tflm: check that the project fits this board's flash and RAM, and add its build and flash port.",
)
@_policy_options
@click.option("-o", "--output", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.pass_obj
def compile_(
    settings, model_path, target, labels, name, cropper_path, compiler, timeout, board, scales, margin, output
):
    """Turn an int8 .tflite (and its cropper) into what a device runs.

    \b
    Examples:
      tfscissor compile trimmed.tflite --target edgetpu -o trimmed_tpu/
      tfscissor compile trimmed.tflite --target tflm -o trimmed_fw/
      tfscissor compile model32.tflite --cropper model32.cropper.tflite --target tflm -o model32_fw/
    """
    for path in (model_path, cropper_path):
        if path is not None and Path(path).suffix != ".tflite":
            raise UsageError(f"{path} is not a .tflite model: quantize it first with `tfscissor quantize`")
    if compiler is not None and target != "edgetpu":
        raise UsageError("--compiler is for --target edgetpu")
    if board is not None and target != "tflm":
        raise UsageError("--board is for --target tflm")
    labels = _parse_labels(labels)
    policy = _policy(scales, margin) if cropper_path is not None else None
    if target == "tflm":
        return _compile_tflm(model_path, output, labels, name, cropper_path, policy, board)
    from tfscissor.compile.bundle import write_edgetpu_bundle, write_tflite_bundle
    from tfscissor.compile.edgetpu import CompilerMissing

    if target == "tflite":
        bundle = write_tflite_bundle(model_path, output, labels=labels, cropper=cropper_path, policy=policy)
        click.echo(f"wrote {output}: {', '.join(bundle.manifest['files'])}")
        return
    bundle = write_edgetpu_bundle(
        model_path, output, labels=labels, cropper=cropper_path, policy=policy, compiler=compiler, timeout=timeout
    )
    for role, analysis in bundle.analyses.items():
        compiled = bundle.compiled.get(role)
        source = "compiled" if compiled else "predicted"
        rows = compiled.rows if compiled else analysis.table()
        mapped = compiled.mapped if compiled else analysis.mapped
        refused = "; but the compiler refuses the model as it is" if analysis.problems and not compiled else ""
        click.echo(f"{role}: {mapped} of {len(analysis.verdicts)} operations on the Edge TPU ({source}){refused}")
        for line in _format_table(list(rows), ["operator", "count", "status"]):
            click.echo(f"  {line}")
        for problem in analysis.problems:
            click.echo(f"  problem: {problem}")
        if compiled and compiled.on_chip_bytes is not None:
            click.echo(
                f"  on-chip parameter cache {compiled.on_chip_bytes:,} bytes, streamed off-chip "
                f"{compiled.off_chip_bytes:,} bytes"
            )
    if bundle.missing:
        raise CompilerMissing(
            f"wrote {output} (int8 models, predicted mapping in edgetpu_analysis.md) but did not compile: "
            f"{bundle.missing}"
        )
    click.echo(f"wrote {output}")


def _compile_tflm(model_path, output, labels, name, cropper_path, policy, board):
    from tfscissor.compile import write_tflm_project

    project = write_tflm_project(
        model_path,
        output,
        labels=labels,
        name=name or _c_name(model_path),
        cropper=cropper_path,
        policy=policy,
        board=board,
    )
    click.echo(f"wrote {output}: {len(project.ops)} ops ({', '.join(project.ops)})")
    for role, part in (("cropper", project.cropper), ("classifier", project)):
        if part is not None:
            click.echo(f"  {role}: arena {part.arena_bytes:,} bytes, model {part.model_bytes:,} bytes")
    if project.fit is not None:
        click.echo(project.fit.summary())
        for warning in project.fit.warnings:
            click.echo(f"warning: {warning}", err=True)
        if project.fit.board.port:
            click.echo(
                f"board port: {output}/{project.fit.board.port}/ (build and flash: tfscissor flash {output} "
                f"--board {board})"
            )


@cli.command()
@click.argument("project_dir", type=click.Path(file_okay=False))
@click.option(
    "--board",
    type=click.Choice(BOARD_NAMES),
    required=True,
    help="The board the project was compiled for (compile --board).",
)
@click.option(
    "--port",
    "serial_port",
    default=None,
    help="The board's serial port (/dev/ttyACM0, COM3); default: the tool's own choice.",
)
def flash(project_dir, board, serial_port):
    """Build a firmware project with its board's tool (idf.py, arduino-cli, west) and flash it.

    \b
    Examples:
      tfscissor compile trimmed.tflite --target tflm --board esp32s3 -o trimmed_fw/
      tfscissor flash trimmed_fw/ --board esp32s3 --port /dev/ttyUSB0
    """
    from tfscissor.compile.flash import flash_project

    result = flash_project(project_dir, board, serial_port=serial_port, echo=click.echo)
    click.echo(f"flashed {project_dir} to the {board}" + (f"; its output: {result.monitor}" if result.monitor else ""))


def _keras_info_lines(result):
    rows = [
        {
            "layer": layer["name"],
            "class": layer["class_name"],
            "output": "x".join(str(d) for d in layer["output_shape"]),
            "MACs": layer["macs"],
            "params": layer["params"],
            "activations": layer["activation_elements"],
        }
        for layer in result["layers"]
    ]
    return [
        *_format_table(rows, ["layer", "class", "output", "MACs", "params", "activations"]),
        f"total: {result['macs']:,} MACs, {result['params']:,} params, "
        f"peak activations {result['peak_activation_elements']:,} elements",
    ]


def _tflite_info_lines(result):
    def tensor(t):
        return f"{t['name']} {t['shape']} {t['dtype']}, scale {t['scale']:.6g}, zero point {t['zero_point']}"

    ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in result["op_counts"].items())
    return [
        f"{result['name']}: {result['size']:,} bytes, {'fully int8' if result['fully_int8'] else 'not fully int8'}",
        f"ops: {ops}",
        *(f"input  {tensor(t)}" for t in result["inputs"]),
        *(f"output {tensor(t)}" for t in result["outputs"]),
    ]


def _c_name(path):
    """A C identifier from a file name: ``my-model.v2.tflite`` -> ``my_model_v2``."""
    name = re.sub(r"\W", "_", Path(path).stem) or "model"
    return f"m_{name}" if name[0].isdigit() else name


def _parse_labels(labels):
    if labels is None:
        return None
    if Path(labels).is_file():
        return [line.strip() for line in Path(labels).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [name.strip() for name in labels.split(",")]


_BENCH_COLUMNS = {
    "first ms": "first_inference_ms",
    "median ms": "median_ms",
    "p90 ms": "p90_ms",
    "max ms": "max_ms",
    "mean ms": "mean_ms",
    "per s": "throughput_per_s",
    "model bytes": "model_bytes",
    "arena bytes": "arena_bytes",
    "setup ms": "setup_ms",
}


def _bench_lines(model_path, result):
    """A table of the stages and their total, then what the device adds: ops, the board fit, devices found."""
    stages = result["stages"]
    columns = [c for c, key in _BENCH_COLUMNS.items() if any(key in stage for stage in stages.values())]
    rows = [
        {"stage": name, **{c: figures.get(_BENCH_COLUMNS[c]) for c in columns}}
        for name, figures in [*stages.items(), ("total", result["total"])]
    ]
    for row in rows:  # whole runs per second read better than 4 significant digits in e-notation
        row["per s"] = round(row["per s"])
    lines = [
        f"{model_path} on {result['device']}, {result['title']}; {result['timing']}",
        f"{result['runs']} timed runs after {result['warmup']} warm-up; first: the first inference, timed alone"
        + ("; total: the sum of the stages" if len(stages) > 1 else ""),
        *_format_table(rows, ["stage", *columns]),
    ]
    classifier = stages["classifier"]
    if "num_threads" in classifier:
        threads = classifier["num_threads"] or "LiteRT's default"
        lines.append(f"threads: {threads}; peak RSS of the process {classifier['peak_rss_bytes'] / 2**20:.0f} MiB")
    for name, stage in stages.items():
        if "op_counts" in stage:
            lines.append(f"{name} ops: " + ", ".join(f"{op} x{n}" for op, n in stage["op_counts"].items()))
        if "cpu_ops" in stage:
            lines.append(
                f"{name}: {stage['edgetpu_ops']} Edge TPU op(s); on the host CPU: {', '.join(stage['cpu_ops']) or 'none'}"
            )
    if "devices_found" in classifier:
        found = ", ".join(f"{d['type']}:{i} {d['path']}" for i, d in enumerate(classifier["devices_found"]))
        lines.append(f"Edge TPUs found: {found}; setup: opening the device and creating the interpreter")
    if "board" in result:
        fit = result["board"]
        lines.append(f"board {fit['summary']}")
        lines.extend(f"warning: {warning}" for warning in fit["warnings"])
    return lines


@cli.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    metavar="cpu|tflm|usb[:N]|pci[:N]",
    help="cpu: LiteRT on this host; tflm: TFLite Micro on this host (arena, flash, ops, host time); "
    "usb, pci: the Nth Coral Edge TPU (an _edgetpu.tflite model).",
)
@click.option("--runs", type=click.IntRange(1), default=100, show_default=True)
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None, help="cpu: LiteRT threads (default: LiteRT's).")
@click.option(
    "--board",
    type=click.Choice(BOARD_NAMES),
    default=None,
    help="tflm: check the models and arenas against this board's flash and RAM.",
)
@click.option(
    "--cropper",
    "cropper_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The cropper's .tflite: time crop-then-classify stage by stage.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def bench(settings, model_path, device, runs, warmup, threads, board, cropper_path, as_json):
    """Measure latency of a .tflite model: first inference, then median, p90 and max of N runs.

    \b
    Examples:
      tfscissor bench trimmed.tflite --device cpu --runs 200 --json
      tfscissor bench trimmed.tflite --device tflm --board nano33ble
      tfscissor bench model32.tflite --cropper model32.cropper.tflite
      tfscissor bench trimmed_tpu/classifier_edgetpu.tflite --device usb:0
    """
    from tfscissor.bench import bench as run_bench
    from tfscissor.progress import progress_bar

    models = 1 if cropper_path is None else 2
    with progress_bar(total=models * runs, desc="bench", enabled=settings.progress and not as_json) as bar:
        result = run_bench(
            model_path,
            device=device,
            cropper=cropper_path,
            runs=runs,
            warmup=warmup,
            board=board,
            progress=bar.update,
            num_threads=threads,
        )
    _emit(as_json, result, _bench_lines(model_path, result))


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory (default: runs/<recipe file name>).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan (and what is up to date) without running anything.")
@click.option(
    "--from",
    "start",
    default=None,
    metavar="STAGE",
    help="Run from this stage on, even where up to date: train, trim, shrink, crop, quantize, compile, bench, report.",
)
@click.pass_obj
def run(settings, recipe, output, dry_run, start):
    """Run a YAML recipe: train, trim, shrink, crop, quantize, compile, bench and report, then print a summary.

    A rerun skips the stages that are up to date and resumes an interrupted one from its last epoch.

    \b
    Examples:
      tfscissor run recipes/demo.yaml
      tfscissor run recipes/resnet50-imagenet.yaml --dry-run
      tfscissor run recipes/demo.yaml --from quantize
    """
    from tfscissor.recipe import describe_plan, load_recipe

    spec = load_recipe(recipe)
    run_dir = Path(output or Path("runs") / Path(recipe).stem)
    if dry_run:
        if start is not None:
            raise UsageError("--from and --dry-run: the plan shows what a run would do; drop --from")
        click.echo(f"plan of {recipe} into {run_dir}/:")
        for line in describe_plan(spec, run_dir if run_dir.is_dir() else None):
            click.echo(f"  {line}")
        return
    from tfscissor.recipe import run_recipe

    summary = run_recipe(spec, run_dir, start=start, progress=settings.progress, callbacks=settings.callbacks)
    click.echo("")
    for line in _format_table(summary["rows"], summary["columns"]):
        click.echo(line)
    for note in summary.get("notes", []):
        click.echo(f"note: {note}")
    click.echo(f"\nresults in {run_dir}/ (summary.md, summary.json, models, firmware/; log: run.log, logs/)")
    click.echo(f"report: {run_dir / 'report.html'} and report.md")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def report(run_dir):
    """Write report.md and report.html (plots in report/) for a run directory.

    \b
    Example:
      tfscissor report runs/demo
    """
    from tfscissor.report import write_report

    md_path, html_path = write_report(run_dir)
    click.echo(f"wrote {html_path} and {md_path}")


# TensorFlow 2.21's oneDNN kernels crash the process (segfault, "double free") in the backward pass of some 1x1
# stride-2 convolutions with few input channels, for example 14 channels at 48x48: the projection shortcut of a
# trimmed ResNet. TensorFlow's own kernels train them; they are slower (1.7-2x per epoch on 2 cores), which is
# better than a crash. An explicit TF_ENABLE_ONEDNN_OPTS=1 in the environment opts back in.
ONEDNN_DEFAULT = "0"


def main():
    """Console entry point: keeps native libraries' log lines off the terminal unless ``--debug``, and turns
    TensorFlow's oneDNN kernels off unless the environment asks for them (see ``ONEDNN_DEFAULT``)."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", ONEDNN_DEFAULT)
    if "--debug" not in sys.argv[1:]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # TensorFlow's Python logger warns on every retrace; the statistics callback retraces on purpose.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        # Keras's and Pillow's Python warnings address the library's developers, not a user of the command.
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
        _route_native_stderr_to_devnull()
    cli(prog_name="tfscissor")


def _route_native_stderr_to_devnull():
    """TensorFlow, the converter and LiteRT write info lines straight to file descriptor 2 from C++.

    Point descriptor 2 at /dev/null and give Python's ``sys.stderr`` a private copy of the real stream, so
    tfscissor's own messages and progress bars still reach the user.
    """
    try:
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(real, "w", buffering=1, encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        pass  # no real descriptor 2 (embedded interpreter): nothing to protect
