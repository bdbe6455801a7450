"""``shrink``: depth, width and resolution searched together against a budget
(:func:`tfscissor.shrink.run_shrink`)."""

import click

from tfscissor.cli.options import (
    FiniteRange,
    data_option,
    float_list,
    int_list,
    keras_output,
    keras_output_path,
    seed_option,
)
from tfscissor.cli.output import cell, format_table
from tfscissor.crop.stage import check_cropper, load_stage_model
from tfscissor.data import load_data
from tfscissor.errors import UsageError
from tfscissor.io import check_not_input
from tfscissor.models import load_model, save_model
from tfscissor.progress import note


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@data_option()
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
    "--teacher",
    "teacher_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Distil the final fine-tunes from this classifier on the whole images (e.g. the full-resolution model "
    "when searching on crops); default: the model itself on what it takes.",
)
@click.option("--no-distill", is_flag=True, help="Fine-tune on the labels alone.")
@click.option(
    "--resume", type=click.Path(dir_okay=False), default=None, help="JSON file of measured candidates to continue from."
)
@seed_option("Seed of the calibration images and the fine-tunes.")
@keras_output
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
    teacher_path,
    no_distill,
    resume,
    seed,
    output,
):
    """Shrink depth, width and resolution together to fit a budget.

    \b
    Example:
      tfscissor shrink model.keras --data cluttered --budget macs=0.5 --resolutions 64,48 -o small.keras
    """
    from tfscissor.shrink import parse_budget, run_shrink  # loads Keras

    check_not_input(keras_output_path(output), model_path, cropper_path, resume, teacher_path)
    if teacher_path is not None and no_distill:
        raise UsageError("--teacher and --no-distill contradict each other: give one of them")
    limits = parse_budget(budget)
    model = load_model(model_path)
    cropper = None
    if cropper_path is not None:
        cropper = load_stage_model(cropper_path, "cropper")
        check_cropper(cropper, cropper_path)
    teacher = load_model(teacher_path) if teacher_path is not None else None
    result = run_shrink(
        model,
        load_data(data_spec, tuple(cropper.input_shape[1:3]) if cropper is not None else None),
        limits,
        cropper=cropper,
        depths=int_list(depths, "--depths"),
        widths=float_list(widths, "--widths"),
        resolutions=int_list(resolutions, "--resolutions") if resolutions else None,
        refine_steps=3 if method == "refine" else 0,
        depth_criterion=depth_criterion,
        calibration=calibration,
        score=score,
        top=top,
        fine_tune_epochs=fine_tune_epochs,
        learning_rate=lr,
        distill=not no_distill,
        teacher=teacher,
        seed=seed,
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
    for line in format_table(rows, ["candidate", "stage", *axes, "fits", "score", "accuracy"]):
        click.echo(line)
    chosen = next(r for r in result.rows if r["candidate"] == str(result.candidate))
    costs = ", ".join(
        f"{axis} {cell(chosen['costs'][axis])} ({chosen['costs'][axis] / result.original[axis]:.0%})" for axis in axes
    )
    click.echo(f"chosen {result.candidate}: {costs}; accuracy {chosen['accuracy']:.4f}")
    click.echo(f"saved {output}")


def _shrink_row(row):
    if "costs" not in row:
        return row.get("skipped", "")
    costs = ", ".join(f"{axis} {cell(value)}" for axis, value in row["costs"].items())
    return f"{costs}; " + (f"score {row['score']:.4f}" if row["feasible"] else "over budget")
