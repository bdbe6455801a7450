"""``run`` and ``report``: a whole YAML recipe into a run directory, and its report (:mod:`tfscissor.recipe`)."""

from pathlib import Path

import click

from tfscissor.cli.output import format_table
from tfscissor.errors import UsageError
from tfscissor.recipe import describe_plan, load_recipe, run_recipe
from tfscissor.recipe.stages import STAGE_NAMES
from tfscissor.report import write_report


@click.command()
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
    help=f"Run from this stage on, even where up to date: {', '.join(STAGE_NAMES)}.",
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
    spec = load_recipe(recipe)
    run_dir = Path(output or Path("runs") / Path(recipe).stem)
    if dry_run:
        if start is not None:
            raise UsageError("--from and --dry-run: the plan shows what a run would do; drop --from")
        click.echo(f"plan of {recipe} into {run_dir}/:")
        for line in describe_plan(spec, run_dir if run_dir.is_dir() else None):
            click.echo(f"  {line}")
        return
    summary = run_recipe(spec, run_dir, start=start, progress=settings.progress, callbacks=settings.callbacks)
    click.echo("")
    for line in format_table(summary["rows"], summary["columns"]):
        click.echo(line)
    for note in summary.get("notes", []):
        click.echo(f"note: {note}")
    click.echo(f"\nresults in {run_dir}/ (summary.md, summary.json, models, firmware/; log: run.log, logs/)")
    click.echo(f"report: {run_dir / 'report.html'} and report.md")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def report(run_dir):
    """Write report.md and report.html (plots in report/) for a run directory.

    \b
    Example:
      tfscissor report runs/demo
    """
    md_path, html_path = write_report(run_dir)
    click.echo(f"wrote {html_path} and {md_path}")
