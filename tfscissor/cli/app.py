"""The ``tfscissor`` group: global options, one-line errors, and the console entry point that keeps native
libraries' log lines off the terminal."""

import errno
import logging
import os
import sys

import click

from tfscissor.errors import TfscissorError


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
        from tfscissor.models.callbacks import EpochProgress  # loads Keras

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
