"""Options and parameter types more than one command shares, with their choices taken from the library's
registries so that a new board, target or criterion needs no change here."""

import math

import click

from tfscissor.compile.boards import BOARDS
from tfscissor.data.spec import check_data_spec
from tfscissor.deploy.crop_policy import CropPolicy
from tfscissor.errors import UsageError

DEFAULT_DATA = "cluttered"


class FiniteRange(click.FloatRange):
    """A number in a range that is also finite: click's own range lets "nan" through (every comparison with
    NaN is false), and a NaN learning rate trains a model of NaNs."""

    name = "finite number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number

    def _describe_range(self):
        # click describes a range without bounds as "x<=None" in --help; an unbounded one has nothing to say.
        return "" if self.min is None and self.max is None else super()._describe_range()


def _check_data(ctx, param, value):
    # While the options are parsed: a mistyped spec or a missing folder is reported before anything loads.
    if value is not None:
        check_data_spec(value)
    return value


def data_option(required=False):
    return click.option(
        "--data",
        "data_spec",
        default=None if required else DEFAULT_DATA,
        required=required,
        show_default=not required,
        callback=_check_data,
        help="Data spec: cluttered[:key=value,...], folder:PATH, idx:PATH or tfds:NAME.",
    )


def board_option(help):
    return click.option("--board", type=click.Choice(sorted(BOARDS)), default=None, help=help)


def seed_option(help=None):
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


def keras_output(command):
    return click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .keras file.")(
        command
    )


def json_option(command):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(command)


def policy_options(command):
    """--margin and --scales: the crop policy of a two-stage pipeline (:class:`~tfscissor.deploy.CropPolicy`)."""
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


def crop_policy(scales, margin):
    """The :class:`~tfscissor.deploy.CropPolicy` of --scales and --margin."""
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


def parse_args(pairs):
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


def int_list(text, option):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of integers: e.g. 0,1,2") from None


def float_list(text, option):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a comma-separated list of numbers: e.g. 1,0.75,0.5") from None


def keras_output_path(output):
    if not output.endswith(".keras"):
        raise UsageError(f"output {output} must end in .keras")
    return output
