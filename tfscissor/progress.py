"""Progress bars for long loops, silenced by ``--quiet``.

Library functions take a ``progress`` flag or callbacks; only the CLI decides to show bars, so library code
never writes to the terminal on its own.
"""

import sys

from tqdm.auto import tqdm


def progress_bar(total=None, desc=None, enabled=True, unit="it"):
    """A tqdm bar on stderr, or a silent stand-in with the same interface when ``enabled`` is False or stderr
    is not a terminal: a bar redraws itself with carriage returns, which a log file keeps as thousands of
    lines (``make demo > log`` held 190 KB of them). Lines written with :func:`note` reach a log either way."""
    shown = enabled and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not shown, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)


def note(message, enabled=True):
    """One line of progress text on stderr that does not break a running bar."""
    if enabled:
        tqdm.write(message, file=sys.stderr)
