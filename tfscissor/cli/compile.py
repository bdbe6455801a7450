"""``compile`` and ``flash``: what a device runs (``tflite`` and ``edgetpu`` bundles, a TFLM firmware project)
and putting a firmware project on its board (:mod:`tfscissor.compile`)."""

import re
from pathlib import Path

import click

from tfscissor.cli.options import board_option, crop_policy, policy_options
from tfscissor.cli.output import format_table
from tfscissor.compile import flash_project, write_edgetpu_bundle, write_tflite_bundle, write_tflm_project
from tfscissor.compile.boards import BOARDS
from tfscissor.compile.edgetpu_compiler import CompilerMissing
from tfscissor.compile.outputs import FORMATS
from tfscissor.deploy.arena import DEFAULT_ARENA_MARGIN
from tfscissor.errors import UsageError


@click.command(name="compile")
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option(
    "--target",
    type=click.Choice(tuple(FORMATS)),
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
@board_option("tflm: check that the project fits this board's flash and RAM, and add its build and flash port.")
@policy_options
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
    policy = crop_policy(scales, margin) if cropper_path is not None else None
    if target == "tflm":
        return _compile_tflm(model_path, output, labels, name, cropper_path, policy, board)
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
        for line in format_table(list(rows), ["operator", "count", "status"]):
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
            click.echo(
                f"  {role}: arena {part.arena_bytes:,} bytes (measured {part.measured_arena_bytes:,} + {DEFAULT_ARENA_MARGIN:.0%} margin), "
                f"model {part.model_bytes:,} bytes"
            )
    if project.fit is not None:
        click.echo(project.fit.summary())
        for warning in project.fit.warnings:
            click.echo(f"warning: {warning}", err=True)
        if project.fit.board.port:
            click.echo(
                f"board port: {output}/{project.fit.board.port}/ (build and flash: tfscissor flash {output} "
                f"--board {board})"
            )


@click.command()
@click.argument("project_dir", type=click.Path(file_okay=False))
@click.option(
    "--board",
    type=click.Choice(sorted(BOARDS)),
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
    result = flash_project(project_dir, board, serial_port=serial_port, echo=click.echo)
    click.echo(f"flashed {project_dir} to the {board}" + (f"; its output: {result.monitor}" if result.monitor else ""))


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
