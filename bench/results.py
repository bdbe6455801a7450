"""bench/RESULTS.md holds one section per benchmark; each script rewrites its own section and keeps the rest."""

import platform
from pathlib import Path

from tfscissor.io import write_text

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Each section is rewritten by the script it names. Medians and ratios come from one run on one machine.\n"
)


def cpu_name():
    """The CPU model, for the machine line of each section."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine():
    """CPU, cores, GPUs, OS and the versions that decide the numbers: the machine line of each section."""
    import os

    import keras
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return (
        f"{cpu_name()}, {os.cpu_count()} cores, {f'{gpus} GPU' if gpus else 'no GPU'}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def log(message):
    """A progress line on stderr."""
    import sys

    print(message, file=sys.stderr, flush=True)


def update_section(name, markdown, path=RESULTS):
    """Replace the section ``name`` of ``path`` with ``markdown`` (append it if new), atomically."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_text(path, text)


def join_datasets(parts):
    """One data set from the train and val splits of several, boxes kept where every part has them.

    The cluttered generator renders at most 48 objects per class and split (then varies their scale, colour,
    position and background per image), so one spec holds 480 distinct items per split whatever its size;
    joining specs of several seeds multiplies the distinct items of both splits.
    """
    import numpy as np

    from tfscissor.data import Dataset, Split

    def join(splits):
        boxes = [s.boxes for s in splits]
        return Split(
            np.concatenate([s.images for s in splits]),
            np.concatenate([s.labels for s in splits]),
            None if any(b is None for b in boxes) else np.concatenate(boxes),
        )

    name = parts[0].spec if len(parts) == 1 else f"{parts[0].spec} and {len(parts) - 1} more seeds"
    return Dataset(name, parts[0].class_names, join([p.train for p in parts]), join([p.val for p in parts]))


def plural(count, noun):
    return f"{count} {noun}{'s' * (count != 1)}"
