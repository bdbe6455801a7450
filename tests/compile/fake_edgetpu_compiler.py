#!/usr/bin/env python3
"""A stand-in for Coral's ``edgetpu_compiler`` at the process boundary, for the tests of ``compile_models``.

The real compiler is a closed-source package for x86-64 Debian/Ubuntu from Coral's apt repository and cannot be
had here, so this script plays it: it takes the compiler's command line (``[-s|--show_operations] [-o|--out_dir
DIR] [-t|--timeout_sec N] MODEL.tflite ...``, flags as ``--flag value`` or ``--flag=value``), and for each model
writes ``DIR/<name>_edgetpu.tflite`` (the input bytes followed by :data:`MARKER`) and ``DIR/<name>_edgetpu.log``
in the real log's layout, listing every operator of the model as "Mapped to Edge TPU". It prints what compiler 16
prints when co-compiling, one block per model starting at ``Input model:``, with the operator table under each
block when asked with ``-s``. Model ``i`` (from 0, in command-line order) reports ``{i + 1}.50KiB`` of on-chip
memory, ``7.67MiB`` remaining and ``0.00B`` off-chip. Like any flag parser, it takes an argument starting with
``-`` for a flag and fails on one it does not know. It compiles nothing.

Environment:

* ``FAKE_EDGETPU_CALLS``: a file to which each run appends its arguments as one JSON line;
* ``FAKE_EDGETPU_MODE``: ``fail`` prints the errors compiler 16 prints for a model with dynamic tensors
  (google-coral/edgetpu#829) and exits 1; ``no_output`` exits 0 without writing any file.
"""

import json
import os
import sys
from pathlib import Path

from tfscissor.deploy.flatbuffer import read_model

VERSION = "16.0.384591198"
MARKER = b"FAKE-EDGETPU"
_FLAGS = {"-s": "show", "--show_operations": "show", "-o": "out_dir", "--out_dir": "out_dir"}
_FLAGS.update({"-t": "timeout", "--timeout_sec": "timeout"})


def _parse(argv):
    options, models, args = {"show": False, "out_dir": ".", "timeout": "180"}, [], iter(argv)
    for arg in args:
        flag, equals, value = arg.partition("=")
        if not arg.startswith("-"):
            models.append(arg)
        elif _FLAGS.get(flag) == "show":
            options["show"] = True
        elif flag in _FLAGS:
            options[_FLAGS[flag]] = value if equals else next(args)
        else:
            sys.exit(f"ERROR: Unknown command line flag '{flag.lstrip('-')}'")
    return options, models


def _table(counts):
    rows = [f"{op:<31}{count:<11}Mapped to Edge TPU" for op, count in counts.items()]
    return [f"{'Operator':<31}{'Count':<11}Status", "", *rows]


def main(argv):
    calls = os.environ.get("FAKE_EDGETPU_CALLS")
    if calls:
        with open(calls, "a", encoding="utf-8") as file:
            file.write(json.dumps(argv) + "\n")
    options, models = _parse(argv)
    print(f"Edge TPU Compiler version {VERSION}")
    print(f"Started a compilation timeout timer of {options['timeout']} seconds.")
    mode = os.environ.get("FAKE_EDGETPU_MODE", "")
    if mode == "fail":
        print(
            "ERROR: Attempting to use a delegate that only supports static-sized tensors with a graph that has "
            "dynamic-sized tensors.",
            file=sys.stderr,
        )
        print(
            "Compilation failed: Model failed in Tflite interpreter. Please ensure model can be loaded/run in "
            "Tflite interpreter."
        )
        print("Compilation child process completed within timeout period.")
        print("Compilation failed! ")
        return 1
    if mode == "no_output":
        return 0
    print(f"\nModel{'s' if len(models) > 1 else ''} compiled successfully in 12 ms.")
    out_dir = Path(options["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, model in enumerate(models):
        data = Path(model).read_bytes()
        counts = read_model(data).op_counts
        output = out_dir / f"{Path(model).stem}_edgetpu.tflite"
        log = output.with_suffix(".log")
        output.write_bytes(data + MARKER)
        log.write_text(
            "\n".join(
                [f"Edge TPU Compiler version {VERSION}", f"Input: {model}", f"Output: {output}", "", *_table(counts)]
            )
            + "\n"
        )
        print(f"\nInput model: {model}")
        print(f"Input size: {len(data) / 1024:.2f}KiB")
        print(f"Output model: {output}")
        print(f"Output size: {(len(data) + len(MARKER)) / 1024:.2f}KiB")
        print(f"On-chip memory used for caching model parameters: {i + 1}.50KiB")
        print("On-chip memory remaining for caching model parameters: 7.67MiB")
        print("Off-chip memory used for streaming uncached model parameters: 0.00B")
        print("Number of Edge TPU subgraphs: 1")
        print(f"Total number of operations: {sum(counts.values())}")
        print(f"Operation log: {log}")
        print("See the operation log file for individual operation details.")
        if options["show"]:
            print("", *_table(counts), sep="\n")
    print("Compilation child process completed within timeout period.")
    print("Compilation succeeded! ")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
