"""Parent side of the TFLM probe: feeds arena sizes to ``_tflm_worker.py`` and survives its crashes."""

import contextlib
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tfscissor.errors import TfscissorError

_WORKER = Path(__file__).with_name("_tflm_worker.py")


def _worker_command(model_path, input_path):
    # The same interpreter, so the child sees the same installed tflite-micro and numpy.
    return [sys.executable, str(_WORKER), str(model_path), str(input_path)]


def _describe_exit(returncode):
    if returncode < 0:
        try:
            return f"crashed with {signal.Signals(-returncode).name}"
        except ValueError:
            return f"crashed with signal {-returncode}"
    return f"exited with status {returncode}"


class Prober:
    """``probe(arena_size)`` runs the model once in TFLM; returns the output bytes, or None if it failed.

    A worker that dies mid-probe (a crash on a tiny arena) counts as a failed probe; the next probe starts a
    fresh worker. ``last_log`` is what TFLM wrote to stderr during the latest probe, for error messages.
    Use as a context manager so the worker and the temporary files go away.
    """

    def __init__(self, model_bytes, input_bytes):
        self._dir = tempfile.TemporaryDirectory(prefix="tfscissor-tflm-")
        root = Path(self._dir.name)
        self._model, self._input, self._log = root / "model.tflite", root / "input.bin", root / "stderr.log"
        self._model.write_bytes(model_bytes)
        self._input.write_bytes(input_bytes)
        self._proc = None
        self.last_log = ""
        self.last_exit = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                _worker_command(self._model, self._input),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )

    def _log_tail(self, size):
        text = self._log.read_text(encoding="utf-8", errors="replace")
        marker = f"--- arena {size}\n"
        return text.rsplit(marker, 1)[-1].strip() if marker in text else text.strip()

    def probe(self, size):
        if self._proc is None:
            self._start()
        try:
            self._proc.stdin.write(f"{int(size)}\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:
            self.last_exit = _describe_exit(self._proc.wait())
            self._proc = None
            self.last_log = self._log_tail(size)
            if "--- arena" not in self._log.read_text(encoding="utf-8", errors="replace"):
                # It died before its first probe: TFLM's runtime is missing or broken, not the model.
                raise TfscissorError(
                    f"the TFLite Micro worker {self.last_exit} before running anything ({self.last_log or 'no message'}): "
                    "check that tflite-micro is installed (pip install tflite-micro==0.dev20261023182759)"
                )
            return None
        self.last_exit = None
        self.last_log = self._log_tail(size)
        status, _, payload = answer.strip().partition(" ")
        return bytes.fromhex(payload) if status == "ok" else None

    def close(self):
        if self._proc is not None:
            with contextlib.suppress(BrokenPipeError):  # a worker that already died
                self._proc.stdin.close()  # ends the worker's loop
            self._proc.wait()
            self._proc.stdout.close()
            self._proc = None
        self._dir.cleanup()
