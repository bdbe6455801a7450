"""``write_report``: a run directory's ``report.md`` and ``report.html``, with their plots in ``report/``."""

import json
from pathlib import Path

import yaml

from tfscissor.errors import DataError
from tfscissor.io import atomic_dir, write_text
from tfscissor.report import plots
from tfscissor.report.crops import load_crop_examples
from tfscissor.report.document import Code, Figure, Heading, Paragraph, Table, to_html, to_markdown
from tfscissor.report.record import read_run
from tfscissor.trim.statistics import ChannelStatistics

PLOTS = "report"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"

DEFINITIONS = (
    "Accuracy is on the validation split (int8 models run in LiteRT, as deployed); MACs and params come from the "
    "Keras graph; model bytes are the .tflite flatbuffer (float32 for a float stage); arena bytes are the TFLM "
    "tensor arena (measured, or as a firmware project configures it, margin included); a crop-then-classify "
    "row counts both models (their arenas too: the two-stage firmware gives each its own); latency is the median "
    "per device (a pipeline's: cropper, host crop and classifier); Edge TPU is the operations mapped to the Edge "
    "TPU of all operations. '-': not measured."
)


def write_report(run_dir):
    """Write ``report.md`` and ``report.html`` into ``run_dir`` from its ``summary.json`` (see
    :mod:`tfscissor.report.record`) and the side files its stages name; return their paths.

    One table row per stage, the command that makes each artifact, the recipe, and PNG plots in
    ``run_dir/report/`` (replaced as a whole): accuracy against MACs of every stage, and per stage that names
    them, channels kept per layer, relevance histograms per layer and example crops.
    """
    run_dir = Path(run_dir)
    summary, stages = read_run(run_dir)
    with atomic_dir(run_dir / PLOTS) as folder:
        figures = _draw(run_dir, stages, folder)
    recipe = summary.get("recipe") or {}
    title = recipe.get("name") or "tfscissor run"
    blocks = _blocks(title, recipe, stages, figures)
    md_path, html_path = run_dir / REPORT_MD, run_dir / REPORT_HTML
    write_text(md_path, to_markdown(blocks))
    write_text(html_path, to_html(blocks, title))
    return md_path, html_path


def _trim_layers(path):
    try:
        layers = json.loads(path.read_text(encoding="utf-8"))["layers"]
        checked = [{"layer": str(x["layer"]), "before": int(x["before"]), "after": int(x["after"])} for x in layers]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"cannot read the trim report {path} ({err!r}): trim again") from err
    if not checked:
        raise DataError(f"the trim report {path} lists no layers: trim again")
    return checked


def _statistics(path):
    statistics = ChannelStatistics.load(path)
    if not statistics:
        raise DataError(f"statistics {path} hold no layers: collect them again")
    return statistics


# Side-file kind -> how to read it, how to draw it, the plot's title and its caption.
_SIDE_PLOTS = {
    "trim": (_trim_layers, plots.channels_kept, "channels kept", "output channels of each layer, before and kept"),
    "statistics": (
        _statistics,
        plots.relevance_histograms,
        "channel relevance",
        "relevance of each layer's channels, measured on the model before trimming",
    ),
    "crop_examples": (
        load_crop_examples,
        lambda examples, path, title: plots.crop_examples(*examples, path, title),
        "example crops",
        "example images with the true box (green) and the cropper's box (red, dashed)",
    ),
}


def _draw(run_dir, stages, folder):
    """Draw every plot that the stages have data for into ``folder``; return their Figure blocks."""
    figures = []
    if any(s.metrics["accuracy"] is not None and s.metrics["macs"] is not None for s in stages):
        plots.accuracy_vs_macs(stages, folder / "accuracy_macs.png")
        figures.append(Figure(f"{PLOTS}/accuracy_macs.png", "Accuracy against MACs of every model of the run"))
    for stage in stages:
        for kind, relative in stage.files.items():
            read, draw, title, caption = _SIDE_PLOTS[kind]
            name = f"{stage.slug}_{kind}.png"
            draw(read(run_dir / relative), folder / name, f"{stage.label}: {title}")
            figures.append(Figure(f"{PLOTS}/{name}", f"{stage.label}: {caption} ({relative})"))
    return figures


def _cell(value, spec):
    return "-" if value is None else format(value, spec)


def _edgetpu(mapping):
    if mapping is None:
        return "-"
    return f"{mapping['mapped']}/{mapping['operations']} ops ({mapping['source']})"


def _blocks(title, recipe, stages, figures):
    devices = sorted({device for stage in stages for device in stage.latency_ms})
    columns = ("stage", "artifact", "accuracy", "MACs", "params", "model bytes", "arena bytes")
    columns += tuple(f"latency ms ({device})" for device in devices) + ("Edge TPU",)
    rows = tuple(
        (
            stage.label,
            stage.artifact,
            _cell(stage.metrics["accuracy"], ".4f"),
            *(_cell(stage.metrics[key], ",") for key in ("macs", "params", "model_bytes", "arena_bytes")),
            *(_cell(stage.latency_ms.get(device), ".3f") for device in devices),
            _edgetpu(stage.edgetpu),
        )
        for stage in stages
    )
    numeric = (False, False, *(True for _ in columns[2:-1]), False)
    blocks = [Heading(title, 1)]
    if recipe:
        model = recipe.get("model", {})
        blocks.append(Paragraph(f"Data {recipe.get('data')}, model {model.get('path') or model.get('name')}."))
    blocks += [Table(columns, rows, numeric), Paragraph(DEFINITIONS)]
    commands = [f"# {stage.label} -> {stage.artifact}\n{stage.command}" for stage in stages if stage.command]
    if commands:
        blocks += [
            Heading("Commands"),
            Paragraph("Each artifact made by hand, stage by stage:"),
            Code("\n\n".join(commands)),
        ]
    if figures:
        blocks += [Heading("Plots"), *figures]
    if recipe:
        blocks += [Heading("Recipe"), Code(yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None))]
    return blocks
