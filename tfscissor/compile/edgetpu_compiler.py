"""Coral's ``edgetpu_compiler``, run when it is installed: :func:`compile_models` compiles one or several models
in one call (co-compiled, so they share the on-chip parameter cache) and parses what it prints and the ``.log``
it writes (:func:`parse_compiler_output`, :func:`parse_operation_log`). The compiler runs in a session of its
own, stopped as a whole when it overruns its time."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tfscissor.compile.edgetpu import MAPPED
from tfscissor.errors import ModelError, TfscissorError, UsageError

__all__ = [
    "COMPILER",
    "CompiledModel",
    "CompilerMissing",
    "compile_models",
    "find_compiler",
    "parse_compiler_output",
    "parse_operation_log",
]

COMPILER = "edgetpu_compiler"
INSTALL = (
    "install Coral's compiler (x86-64 Debian or Ubuntu: add the apt repository "
    "'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main', then `apt-get install "
    "edgetpu-compiler`; elsewhere Coral's Colab notebook compiles) or pass --compiler PATH"
)


class CompilerMissing(TfscissorError):
    """``edgetpu_compiler`` is not installed (or not where ``--compiler`` points)."""


@dataclass(frozen=True)
class CompiledModel:
    """One model as the compiler left it: the ``_edgetpu.tflite``, its operation log parsed into rows, and the
    memory and counts the compiler printed (bytes; None where it printed nothing)."""

    name: str
    tflite: bytes = field(repr=False)
    log: str = field(repr=False)
    rows: tuple
    on_chip_bytes: int | None = None
    on_chip_remaining_bytes: int | None = None
    off_chip_bytes: int | None = None
    subgraphs: int | None = None
    operations: int | None = None

    @property
    def mapped(self):
        return sum(r["count"] for r in self.rows if r["status"] == MAPPED)

    def to_dict(self):
        summary = {k: v for k, v in asdict(self).items() if k not in ("tflite", "log")}
        return {**summary, "rows": list(self.rows), "mapped": self.mapped, "bytes": len(self.tflite)}


def find_compiler(path=None):
    """The compiler to run: ``path`` when given (UsageError when it is not an executable file), else
    ``edgetpu_compiler`` on PATH (CompilerMissing when there is none)."""
    if path is not None:
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise UsageError(f"--compiler {path} is not an executable file: give the path of edgetpu_compiler")
        return str(Path(path).resolve())  # the compiler runs in a private folder, where a relative path is lost
    found = shutil.which(COMPILER)
    if found is None:
        raise CompilerMissing(f"{COMPILER} is not on PATH: {INSTALL}")
    return found


_SIZE = re.compile(r"^([0-9.]+)\s*(B|KiB|MiB|GiB)$")
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\S.*?)\s*$")
_FIELDS = {
    "On-chip memory used for caching model parameters": "on_chip_bytes",
    "On-chip memory remaining for caching model parameters": "on_chip_remaining_bytes",
    "Off-chip memory used for streaming uncached model parameters": "off_chip_bytes",
    "Number of Edge TPU subgraphs": "subgraphs",
    "Total number of operations": "operations",
}


def _bytes(text):
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def parse_operation_log(text):
    """The operator table of a compiler ``.log`` (or of console output with ``-s``): a list of rows
    ``{"operator", "count", "status"}``, in the order printed."""
    rows, in_table = [], False
    for line in text.splitlines():
        if line.split()[:3] == ["Operator", "Count", "Status"]:
            in_table = True
            continue
        match = _ROW.match(line) if in_table else None
        if match and match.group(1).isupper():
            rows.append({"operator": match.group(1), "count": int(match.group(2)), "status": match.group(3)})
        elif in_table and rows and line.strip():
            in_table = False  # the table ends at the first line that is not a row
    return rows


def parse_compiler_output(text):
    """What the compiler printed: ``{"version", "models": [{"input", "output", <size and count fields>}],
    "errors"}``; sizes in bytes. A model's block starts at its ``Input model:`` line."""
    version = re.search(r"Edge TPU Compiler version (\S+)", text)
    models, current = [], None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Input model":
            current = {"input": value}
            models.append(current)
        elif current is not None and key == "Output model":
            current["output"] = value
        elif current is not None and key in _FIELDS:
            field_name = _FIELDS[key]
            current[field_name] = int(value) if field_name in ("subgraphs", "operations") else _bytes(value)
    errors = [
        line.strip() for line in text.splitlines() if line.startswith(("ERROR", "Compilation failed", "Internal"))
    ]
    return {"version": version.group(1) if version else None, "models": models, "errors": errors}


# The compiler's own --timeout_sec bounds its search; past it by this much, tfscissor stops it.
GRACE_SECONDS = 60


def _run_compiler(command, work, limit):
    """Run ``command`` in ``work`` for at most ``limit`` seconds; return (exit code, console text).

    The output goes to a file, not a pipe: a process the compiler leaves behind holding its output would keep
    a pipe open, and reading it would wait out the whole limit after the compiler itself is done. The
    compiler runs in a session of its own, so stopping it (at the limit, or once it exits) stops whatever it
    started too. The console is decoded leniently: a stray byte must not hide the compiler's message.
    """
    with open(work / "console.txt", "w+b") as console:
        process = subprocess.Popen(command, cwd=work, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _stop_session(process)
            raise ModelError(
                f"{COMPILER} did not finish in {limit} s: give it more time with --timeout SECONDS (now "
                f"{limit - GRACE_SECONDS})"
            ) from None
        _stop_session(process)
        console.seek(0)
        return returncode, console.read().decode("utf-8", errors="replace")


def _stop_session(process):
    with contextlib.suppress(ProcessLookupError):  # nothing of it is left
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def compile_models(models, *, compiler=None, timeout=180):
    """Run ``edgetpu_compiler`` on ``models`` ({name: int8 ``.tflite`` bytes}) in one call, so that they are
    co-compiled and share the on-chip cache (in the given order: the first gets it first).

    Runs in a private directory; returns (console text, {name: :class:`CompiledModel`}). Raises CompilerMissing
    without the compiler and ModelError, with the compiler's own error lines, when it fails.
    """
    executable = find_compiler(compiler)
    for name in models:
        # A leading '-' would reach the compiler as an option.
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
            raise UsageError(
                f"model name {name!r} for the compiler: start with a letter, digit or '_', then use those, '.' or '-'"
            )
    with tempfile.TemporaryDirectory(prefix="tfscissor-edgetpu-") as work:
        work = Path(work)
        inputs = []
        for name, data in models.items():
            (work / f"{name}.tflite").write_bytes(data)
            inputs.append(f"{name}.tflite")
        command = [executable, "--show_operations", "--out_dir", "out", "--timeout_sec", str(timeout), *inputs]
        returncode, console = _run_compiler(command, work, timeout + GRACE_SECONDS)
        parsed = parse_compiler_output(console)
        outputs = {name: work / "out" / f"{name}_edgetpu.tflite" for name in models}
        if returncode != 0 or not all(path.is_file() for path in outputs.values()):
            said = parsed["errors"] or console.strip().splitlines()[-1:] or ["it printed nothing"]
            raise ModelError(f"{COMPILER} failed (exit {returncode}): {'; '.join(said)}")
        blocks = {Path(block["input"]).name: block for block in parsed["models"]}
        compiled = {}
        for name, path in outputs.items():
            log_path = path.with_suffix(".log")
            log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
            block = blocks.get(f"{name}.tflite", {})
            compiled[name] = CompiledModel(
                name=name,
                tflite=path.read_bytes(),
                log=log,
                rows=tuple(parse_operation_log(log)),
                **{k: block.get(k) for k in _FIELDS.values()},
            )
        return console, compiled
