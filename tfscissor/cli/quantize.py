"""``quantize``: full int8, post-training or with quantisation-aware training, of one classifier or of a
two-stage pipeline (:func:`tfscissor.quantize.run_quantize`)."""

from pathlib import Path

import click

from tfscissor.cli.crop import pipeline_lines
from tfscissor.cli.options import FiniteRange, data_option, seed_option
from tfscissor.crop.stage import load_two_stage
from tfscissor.data import load_data
from tfscissor.errors import UsageError
from tfscissor.io import check_not_input, write_bytes
from tfscissor.models import load_model
from tfscissor.quantize.stage import QAT_EPOCHS, QAT_LEARNING_RATE, run_quantize


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@data_option()
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
@seed_option("Seed of the calibration images' draw (and of QAT's training).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .tflite file.")
@click.pass_obj
def quantize(settings, model_path, data_spec, samples, cropper_path, cropper_output, qat, epochs, lr, seed, output):
    """Full-int8 quantisation, post-training or with --qat; prints float and int8 accuracy.

    \b
    Examples:
      tfscissor quantize trimmed.keras --data cluttered -o trimmed.tflite
      tfscissor quantize trimmed.keras --data cluttered --qat --epochs 3 -o trimmed.tflite
      tfscissor quantize model32.keras --cropper cropper.keras --data cluttered -o model32.tflite
    """
    if not output.endswith(".tflite"):
        raise UsageError(f"output {output} must end in .tflite")
    check_not_input(output, model_path, cropper_path)
    if cropper_output is not None and cropper_path is None:
        raise UsageError("--cropper-output needs --cropper: give the .keras cropper to quantise with the classifier")
    if not qat and (epochs is not None or lr is not None):
        raise UsageError("--epochs and --lr need --qat: add --qat to fine-tune with quantisation-aware training")
    if qat and cropper_path is not None:
        raise UsageError(
            "--qat quantises one classifier, not a two-stage pipeline: drop --cropper, or drop --qat to quantise "
            "both stages post-training"
        )
    if cropper_path is not None:
        return _quantize_pipeline(model_path, cropper_path, data_spec, samples, seed, output, cropper_output)
    model = load_model(model_path)
    result = run_quantize(
        model,
        load_data(data_spec, image_size=tuple(model.input_shape[1:3])),
        method="qat" if qat else "ptq",
        samples=samples,
        epochs=epochs or QAT_EPOCHS,
        learning_rate=lr or QAT_LEARNING_RATE,
        seed=seed,
        callbacks=settings.callbacks("QAT"),
    )
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


def _quantize_pipeline(model_path, cropper_path, data_spec, samples, seed, output, cropper_output):
    cropper_output = cropper_output or str(Path(output).with_suffix(".cropper.tflite"))
    if not cropper_output.endswith(".tflite") or Path(cropper_output).resolve() == Path(output).resolve():
        raise UsageError(f"--cropper-output {cropper_output} must be a .tflite path other than {output}")
    check_not_input(cropper_output, model_path, cropper_path)
    for path, role in ((cropper_path, "cropper"), (model_path, "classifier")):
        if not path.endswith(".keras"):
            raise UsageError(f"{role} {path} must be a .keras model to quantise")
    pipeline = load_two_stage(cropper_path, model_path)
    dataset = load_data(data_spec, image_size=pipeline.image_shape[:2])
    result = run_quantize(pipeline.classifier, dataset, pipeline=pipeline, samples=samples, seed=seed)
    write_bytes(cropper_output, result.cropper)
    write_bytes(output, result.classifier)
    for line in pipeline_lines(result.float_report, "float crop-then-classify"):
        click.echo(line)
    for line in pipeline_lines(result.int8_report, "int8 crop-then-classify (LiteRT)"):
        click.echo(line)
    click.echo(
        f"saved {output} ({len(result.classifier):,} bytes) and {cropper_output} ({len(result.cropper):,} bytes)"
    )
