"""``tfscissor flash``: build a generated firmware project with its board's tool and write it to the board.

The project must have been written for that board (``tfscissor compile --target tflm --board NAME``), which
put the port in the project and the port's commands in ``manifest.json``. The tool (``idf.py``,
``arduino-cli``, ``west``) is the user's: missing, it is named with how to install it; failing, the error says
whether the build or the flash step failed, the likely cause, and the tool's last lines.
"""

import collections
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tfscissor.compile.boards import board as board_preset
from tfscissor.compile.outputs import FORMATS
from tfscissor.compile.ports import PORTS
from tfscissor.errors import TfscissorError, UsageError

__all__ = ["FlashError", "FlashResult", "flash_project"]

TAIL_LINES = 8  # of the tool's output, repeated in the error after a failed step


class FlashError(TfscissorError):
    """The board's tool is missing, or building or flashing failed."""


@dataclass(frozen=True)
class FlashResult:
    """What ran: the steps (:class:`tfscissor.compile.ports.Step`) and how to watch the board's output."""

    steps: tuple
    monitor: "str | None"


def flash_project(project_dir, board, serial_port=None, echo=None):
    """Build the project in ``project_dir`` for ``board`` and flash it, with the board's port.

    ``serial_port``: the board's serial device (``/dev/ttyACM0``, ``COM3``), for the ports whose flash command
    takes one; default: the tool's own choice. ``echo``: called with each line the tool prints (default: the
    output is dropped). Raises UsageError when ``project_dir`` is not a project written for ``board``, and
    FlashError when the tool is missing or a step fails.
    """
    project_dir = Path(project_dir)
    preset = board_preset(board)
    manifest = _read_manifest(project_dir, board)
    recorded = manifest.get("board") or {}
    if recorded.get("name") != board:
        written = f"for the {recorded['name']} board" if recorded.get("name") else "without --board"
        raise UsageError(
            f"{project_dir} was compiled {written}, not for {board}: recompile it with `tfscissor compile MODEL "
            f"--target tflm --board {board} -o {project_dir}`"
        )
    if preset.port is None:
        raise UsageError(f"the {preset.title} has no port to flash with: build the project with its own tools")
    port = PORTS[preset.port]
    steps = port.steps(preset, manifest["name"], serial_port)
    if not any(step.what == "flash" for step in steps):
        raise UsageError(f"the {port.title} port builds only: write the firmware with the board's own programmer")
    workdir = project_dir / port.workdir(manifest["name"])
    if not workdir.is_dir():
        raise UsageError(
            f"{workdir} is missing: recompile the project with `tfscissor compile MODEL --target tflm --board {board} "
            f"-o {project_dir}`"
        )
    executable = shutil.which(port.tool)
    if executable is None:
        raise FlashError(f"{port.tool} is not on PATH: {port.install}")
    for step in steps:
        _run(step, executable, project_dir, preset, port, serial_port, echo or (lambda line: None))
    return FlashResult(tuple(steps), port.monitor(preset, serial_port))


def _read_manifest(project_dir, board):
    fix = f"make one with `tfscissor compile MODEL --target tflm --board {board} -o {project_dir}`"
    try:
        manifest = json.loads((project_dir / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{project_dir} is not a tfscissor firmware project (no manifest.json): {fix}") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"{project_dir}/manifest.json cannot be read ({err}): {fix}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMATS["tflm"]:
        raise UsageError(f"{project_dir} is not a tfscissor firmware project (its manifest is not tflm's): {fix}")
    return manifest


def _run(step, executable, project_dir, board, port, serial_port, echo):
    """Run one step (with ``executable``, the tool found on PATH) with its output passed to ``echo`` line by
    line; FlashError if it fails."""
    tail = collections.deque(maxlen=TAIL_LINES)
    echo(f"$ {step}")
    try:
        # stderr joins stdout: the tools' errors are what the user needs to see, in order with the rest.
        with subprocess.Popen(
            [executable, *step.argv[1:]],
            cwd=project_dir / step.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process:
            for line in process.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                echo(line)
    except OSError as err:  # on PATH a moment ago, but not runnable (permissions, a broken interpreter line)
        raise FlashError(f"cannot run {step.argv[0]}: {err.strerror or err}: {port.install}") from None
    if process.returncode != 0:
        last = "\n".join(f"  {line}" for line in tail)
        raise FlashError(
            f"`{step}` failed (exit {process.returncode}): {_likely_cause(step, board, port, serial_port)}"
            + (f"\n{step.argv[0]}'s last lines:\n{last}" if last else "")
        )


def _likely_cause(step, board, port, serial_port):
    if step.what == "build":
        setup = " and ".join(f"`{command}`" for command in port.setup(board))
        return "the build failed; if something is missing, " + (
            f"set it up once{port.setup_where} with {setup}" if setup else port.install
        )
    if port.name == "zephyr":
        return f"is the {board.title} connected over USB, and its programmer (or the UF2 drive) present?"
    where = f"is {serial_port} its serial port?" if serial_port else "name its serial port with --port"
    listing = f" (`{port.list_ports}` lists them)" if port.list_ports else ""
    return f"is the {board.title} connected over USB? {where}{listing}"
