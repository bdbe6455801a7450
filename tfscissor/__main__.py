"""The ``tfscissor`` console command (and ``python -m tfscissor``).

Ctrl-C while the command line's own modules still load is answered as click answers it during a command: one
"Aborted!" line and exit status 1, not a traceback from the middle of an import.
"""

import sys


def main():
    try:
        from tfscissor.cli.app import main as run
    except KeyboardInterrupt:
        print("\nAborted!", file=sys.stderr)
        sys.exit(1)
    run()


if __name__ == "__main__":
    main()
