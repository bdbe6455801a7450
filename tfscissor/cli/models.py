"""``train``, ``eval`` and ``info``: a classifier from a builder, and what a model file holds and scores."""

import click

from tfscissor.cli.options import (
    FiniteRange,
    data_option,
    json_option,
    keras_output,
    keras_output_path,
    parse_args,
    seed_option,
)
from tfscissor.cli.output import emit, format_table
from tfscissor.data import load_data
from tfscissor.errors import UsageError
from tfscissor.model_files import describe_file, evaluate_file
from tfscissor.models import build_model, save_model
from tfscissor.models.training import evaluate_classifier, train_classifier


@click.command()
@data_option()
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
@seed_option()
@keras_output
@click.pass_obj
def train(settings, data_spec, model_name, model_args, image_size, epochs, batch_size, lr, seed, output):
    """Train a classifier from a builder on a data set.

    \b
    Example:
      tfscissor train --data cluttered --model resnet --arg 'blocks=[1,1,1]' --epochs 5 -o model.keras
    """
    keras_output_path(output)
    dataset = load_data(data_spec, image_size)
    try:
        model = build_model(model_name, dataset.image_shape, dataset.num_classes, seed=seed, **parse_args(model_args))
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


@click.command(name="eval")
@click.argument("model_path", type=click.Path(dir_okay=False))
@data_option()
@json_option
@click.pass_obj
def evaluate(settings, model_path, data_spec, as_json):
    """Accuracy of a .keras or .tflite classifier on the validation split of a data set.

    \b
    Example:
      tfscissor eval model.tflite --data cluttered --json
    """
    result = evaluate_file(model_path, data_spec)
    emit(
        as_json,
        result,
        [f"{model_path}: accuracy {result['accuracy']:.4f} on {result['samples']} images of {result['data']}"],
    )


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@json_option
@click.pass_obj
def info(settings, model_path, as_json):
    """Per-layer MACs, parameters and activations of a .keras model, or the ops and tensors of a .tflite.

    \b
    Example:
      tfscissor info model.keras --json
    """
    result = describe_file(model_path)
    lines = _keras_info_lines(result) if result["format"] == "keras" else _tflite_info_lines(result)
    emit(as_json, result, lines)


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
        *format_table(rows, ["layer", "class", "output", "MACs", "params", "activations"]),
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
