"""``summary.json`` and ``summary.md`` of a run: the records of every stage, with the bench stage's latencies."""

import json

from tfscissor.io import write_text
from tfscissor.report import SUMMARY_FORMAT
from tfscissor.report.document import Heading, Paragraph, Table, to_markdown

COLUMNS = ["stage", "accuracy", "MACs", "params", "model bytes", "arena bytes", "latency ms"]


def write_summary(ctx):
    latency = (ctx.info("bench") or {}).get("latency_ms", {})
    stages = []
    for entry in ctx.records():
        record = dict(entry["record"])
        record["latency_ms"] = latency.get(record["name"], {})
        stages.append((record, entry["tflite"] is not None))
    rows = [_row(record) for record, has_model in stages if has_model]
    compile_info = ctx.info("compile") or {}
    summary = {
        "format": SUMMARY_FORMAT,
        "recipe": ctx.recipe,
        "columns": COLUMNS,
        "rows": rows,
        "stages": [record for record, _ in stages],
        "notes": [f"Edge TPU: not compiled ({compile_info['edgetpu_missing']})"]
        if compile_info.get("edgetpu_missing")
        else [],
    }
    write_text(ctx.path("summary.json"), json.dumps(summary, indent=2))
    write_text(ctx.path("summary.md"), _markdown(ctx.recipe, rows, summary["notes"]))
    return summary


def _row(record):
    metrics = record["metrics"]
    return {
        "stage": record["label"],
        "accuracy": metrics["accuracy"],
        "MACs": metrics["macs"],
        "params": metrics["params"],
        "model bytes": metrics["model_bytes"],
        "arena bytes": metrics["arena_bytes"],
        "latency ms": record["latency_ms"].get("cpu"),
    }


def _markdown(recipe, rows, notes):
    model = recipe["model"]["path"] or recipe["model"]["name"]
    table = Table(
        tuple(COLUMNS),
        tuple(
            tuple("-" if row[c] is None else f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in COLUMNS)
            for row in rows
        ),
        tuple(c != "stage" for c in COLUMNS),
    )
    return to_markdown(
        [
            Heading(recipe["name"] or "tfscissor run", 1),
            Paragraph(
                f"Data {recipe['data']}, model {model}. Accuracy on the validation split; latency is the median of "
                "LiteRT on this host's CPU; arena bytes are measured with the TFLM interpreter (no margin). A "
                "crop-then-classify row counts both models: MACs, params, bytes and arenas (each stage has its own) "
                "add up, and its latency runs cropper, host crop and classifier."
            ),
            table,
            *(Paragraph(f"Note: {note}") for note in notes),
        ]
    )
