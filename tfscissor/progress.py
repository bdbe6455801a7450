"""Progress bars for long loops, silenced by ``--quiet``.

Library functions take a ``progress`` flag or callbacks; only the CLI decides to show bars, so library code
never writes to the terminal on its own.
"""

import sys

from tqdm.auto import tqdm


def progress_bar(total=None, desc=None, enabled=True, unit="it"):
    """A tqdm bar on stderr, or a silent stand-in with the same interface when ``enabled`` is False."""
    return tqdm(
        total=total, desc=desc, disable=not enabled, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True
    )


def note(message, enabled=True):
    """One line of progress text on stderr that does not break a running bar."""
    if enabled:
        tqdm.write(message, file=sys.stderr)
