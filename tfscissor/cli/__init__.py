"""The ``tfscissor`` command line: one module per command group, each command a thin adapter over one library
entry (``run_trim``, ``run_shrink``, ``run_quantize`` ...) that parses options, calls it and prints the result.

Commands import tfscissor's modules at the top, except those that load Keras and TensorFlow (trimming and
shrinking), which load inside the command so that ``tfscissor --help`` and the deployment commands start fast.
"""

from tfscissor.cli.app import cli, main
from tfscissor.cli.bench import bench
from tfscissor.cli.compile import compile_, flash
from tfscissor.cli.crop import crop
from tfscissor.cli.models import evaluate, info, train
from tfscissor.cli.quantize import quantize
from tfscissor.cli.run import report, run
from tfscissor.cli.shrink import shrink
from tfscissor.cli.trim import trim

for _command in (train, evaluate, info, trim, shrink, crop, quantize, compile_, flash, bench, run, report):
    cli.add_command(_command)

__all__ = ["cli", "main"]
