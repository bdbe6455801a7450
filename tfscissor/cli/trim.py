"""``trim``: remove channels for real (:func:`tfscissor.trim.run_trim`) and say what it cost."""

import click

from tfscissor.cli.options import FiniteRange, data_option, keras_output, keras_output_path, seed_option
from tfscissor.cli.output import format_table
from tfscissor.data import load_data
from tfscissor.io import check_not_input
from tfscissor.models import load_model, save_model
from tfscissor.trim.criteria import DEFAULT_CRITERION, criterion_names, get_criterion
from tfscissor.trim.defaults import ALLOCATIONS, FINE_TUNE_LR, MAX_LAYER_RATIO, STEPS, check_policy


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@data_option()
@click.option(
    "--criterion",
    default=DEFAULT_CRITERION,
    show_default=True,
    help=f"Channel score, one of {', '.join(criterion_names())}: taylor is the loss change where the channel is "
    "read (needs labels), relevance the paper's mean activation.",
)
@click.option("--raw", is_flag=True, help="relevance without the per-layer normalisation.")
@click.option(
    "--allocation",
    type=click.Choice(ALLOCATIONS),
    default="global",
    show_default=True,
    help="global: one ranking of all channels; sensitivity: measure each layer's loss as it loses channels first.",
)
@click.option(
    "--max-layer-ratio",
    type=FiniteRange(0, 1, min_open=True),
    default=MAX_LAYER_RATIO,
    show_default=True,
    help="The largest fraction of one layer's channels the trim may remove.",
)
@click.option("--no-protect-stem", is_flag=True, help="Also trim the channels of the layers that read the input.")
@click.option(
    "--steps",
    type=click.IntRange(1),
    default=STEPS,
    show_default=True,
    help="Surgeries per round, each re-measured on the partly trimmed model.",
)
@click.option("--no-distill", is_flag=True, help="Fine-tune on the labels alone, not also on the untrimmed model.")
@click.option(
    "--reconstruct/--no-reconstruct",
    default=None,
    help=(
        "After surgery, refit the layers that lost input channels, by least squares, to what they computed "
        "before it. Default: only when there is no fine-tuning."
    ),
)
@seed_option("Seed of the sample, the fine-tune and random.")
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
@click.option(
    "--exclude",
    multiple=True,
    metavar="LAYER",
    help="Layer whose output channels must stay (its inputs' too if it is shared or unknown); repeatable.",
)
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
    "--lr",
    type=FiniteRange(0, min_open=True),
    default=FINE_TUNE_LR,
    show_default=True,
    help="Fine-tuning learning rate (Adam, cosine to 0).",
)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Fine-tuning batch size.")
@click.option(
    "--save-stats", type=click.Path(dir_okay=False), default=None, help="Also write the activation statistics (.npz)."
)
@keras_output
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
    reconstruct,
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
    batch_size,
    save_stats,
    output,
):
    """Remove low-scoring channels for real, giving a smaller dense model.

    \b
    Give one policy: --min-relevance, --ratio, --target-macs or --target-params.

    \b
    Examples:
      tfscissor trim model.keras --data cluttered --ratio 0.4 --round-to 4 --fine-tune-epochs 2 -o trimmed.keras
      tfscissor trim model.keras --data cluttered --target-macs 0.5 --rounds 2 --fine-tune-epochs 2 -o half.keras
    """
    # Checked before the long work (and before TensorFlow loads), not after it.
    get_criterion(criterion)
    check_policy(
        {"ratio": ratio, "min_relevance": min_relevance, "target_macs": target_macs, "target_params": target_params},
        round_to,
        min_channels,
    )
    check_not_input(keras_output_path(output), model_path)
    if save_stats:
        check_not_input(save_stats, model_path, output)
    model = load_model(model_path)
    from tfscissor.trim.stage import run_trim  # loads Keras

    result = run_trim(
        model,
        load_data(data_spec, tuple(model.input_shape[1:3])),
        criterion=criterion,
        criterion_options={"normalize": False} if raw else None,
        allocation=allocation,
        max_layer_ratio=max_layer_ratio,
        protect_stem=not no_protect_stem,
        steps=steps,
        distill=not no_distill,
        reconstruct=reconstruct,
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
        batch_size=batch_size,
        callbacks=settings.callbacks("fine-tune"),
        progress=settings.progress,
    )
    save_model(result.model, output)
    if save_stats:
        result.statistics.save(save_stats)
    report = result.report
    for line in format_table(report["layers"], ["layer", "producers", "before", "after"]):
        click.echo(line)
    for line in format_table(_before_after(report), ["", "before", "after", "ratio"]):
        click.echo(line)
    for line in trim_summary(report):
        click.echo(line)
    if report["accuracy_before"] <= report["chance"]:
        click.echo(chance_warning(report), err=True)
    if "costliest_groups" in report:
        click.echo(collapse_warning(report), err=True)
    click.echo(f"saved {output}")


def trim_summary(report):
    """The accuracy straight after surgery and after fine-tuning, so a user sees what each did."""
    refit = " and a least-squares refit" if report["reconstruct"] else ""
    lines = [f"accuracy: {report['accuracy_before']:.4f} before, {report['accuracy_trimmed']:.4f} after surgery{refit}"]
    if report["fine_tune_epochs"]:
        how = " with distillation" if report["distill"] else ""
        lines[0] += f", {report['accuracy_after']:.4f} after {report['fine_tune_epochs']} epochs of fine-tuning{how}"
    return lines


def chance_warning(report):
    """One line: the untrimmed model is no better than chance on the data, so the trim measured nothing."""
    return (
        f"warning: the untrimmed model scores {report['accuracy_before']:.4f} on the data's val split, no better "
        f"than chance ({report['chance']:.4f}), so no criterion had anything to keep: check that the data's classes "
        "are the model's, in the same order (folders sort by name), and that the model takes pixels in [0, 255]"
    )


def collapse_warning(report):
    """One line: surgery alone lost more than half the accuracy, and the groups whose trim alone cost most."""
    groups = ", ".join(f"{name} ({increase:+.2f} loss)" for name, increase in report["costliest_groups"])
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
