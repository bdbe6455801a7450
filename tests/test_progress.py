"""Progress on a terminal is a bar; in a log file it is lines, never redraws."""

import io

from tfscissor import progress


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def _run(monkeypatch, tty):
    stream = _Stream(tty)
    monkeypatch.setattr(progress.sys, "stderr", stream)
    with progress.progress_bar(total=50, desc="work") as bar:
        for _ in range(50):
            bar.update(1)
    progress.note("step 1/1: done")
    return stream.getvalue()


def test_a_log_file_gets_lines_not_bar_redraws(monkeypatch):
    assert _run(monkeypatch, tty=False) == "step 1/1: done\n"


def test_a_terminal_gets_the_bar(monkeypatch):
    shown = _run(monkeypatch, tty=True)
    assert "work" in shown and "\r" in shown and shown.endswith("step 1/1: done\n")
