"""Data spec strings: ``cluttered[:key=value,...]``, ``folder:PATH``, ``idx:PATH``, ``tfds:NAME``.

The same strings are accepted by every command and recipe, so parsing is strict: an unknown kind, an
unknown option or a bad value raises :class:`~tfscissor.errors.UsageError` with a one-line message that
names the culprit, lists what is accepted and shows a working example.

Kinds that take an argument (a path or a name) may be followed by options: ``folder:PATH,val=0.1``.
Trailing comma-separated pieces of the form ``key=value`` are options; everything before them is the
argument, so a path may contain commas as long as no piece after a comma looks like ``key=value``.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tfscissor.errors import DataError, UsageError

__all__ = ["DataSpec", "parse_spec", "KINDS", "SPEC_FORMS"]

SPEC_FORMS = "cluttered[:key=value,...], folder:PATH, idx:PATH, tfds:NAME"

_OPTION_PIECE = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
_TFDS_NAME = re.compile(r"^[a-z0-9_]+(/[A-Za-z0-9_.\-]+)?(:\d+\.\d+\.\d+)?$")


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option: how to parse its value and how to describe it in an error."""

    parse: Callable[[str], object]
    expected: str
    example: str
    default: object = None


@dataclass(frozen=True)
class Kind:
    """A data source kind: whether it takes an argument and which options it accepts."""

    name: str
    arg: str | None
    options: Mapping[str, Option]
    example: str


def _integer(lo, hi):
    def parse(text):
        if not re.fullmatch(r"[+-]?\d+", text.strip()):
            raise ValueError
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError
        return value

    return parse


def _number(lo, hi, lo_open=False, hi_open=False):
    def parse(text):
        value = float(text)  # ValueError for non-numbers, caught by the caller
        if not math.isfinite(value):
            raise ValueError
        if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
            raise ValueError
        return value

    return parse


def _choice(*choices):
    def parse(text):
        if text not in choices:
            raise ValueError
        return text

    return parse


def _integer_in(*values):
    def parse(text):
        value = _integer(min(values), max(values))(text)
        if value not in values:
            raise ValueError
        return value

    return parse


def _non_empty(text):
    if not text.strip():
        raise ValueError
    return text


def _object_source(text):
    if text in ("glyphs", "digits"):
        return text
    if text.startswith("idx:") and text[4:].strip():
        return text
    raise ValueError


_MAX_SEED = 2**32 - 1

CLUTTERED_OPTIONS = types.MappingProxyType(
    {
        "size": Option(_integer(16, 1024), "an integer from 16 to 1024 (canvas side in pixels)", "size=64", 64),
        # The images are generated into memory: 200,000 at 64 px take 2.4 GB.
        "n": Option(_integer(2, 200_000), "an integer from 2 to 200000 (images in train + val)", "n=2000", 2000),
        "classes": Option(_integer(2, 64), "an integer from 2 to 64 (the source may allow fewer)", "classes=10", 10),
        "clutter": Option(_integer(0, 64), "an integer from 0 to 64 (distractors per image)", "clutter=3", None),
        "seed": Option(_integer(0, _MAX_SEED), f"an integer from 0 to {_MAX_SEED}", "seed=0", 0),
        "source": Option(_object_source, "glyphs, digits or idx:PATH", "source=glyphs", "glyphs"),
        "min_scale": Option(
            _number(0.05, 1.0), "a number from 0.05 to 1 (object side / canvas side)", "min_scale=0.3", None
        ),
        "max_scale": Option(
            _number(0.05, 1.0), "a number from 0.05 to 1 (object side / canvas side)", "max_scale=0.75", None
        ),
        "val": Option(
            _number(0.0, 1.0, lo_open=True, hi_open=True), "a number strictly between 0 and 1", "val=0.2", 0.2
        ),
        "channels": Option(_integer_in(1, 3), "1 or 3", "channels=3", 3),
        "difficulty": Option(_choice("normal", "hard"), "normal or hard", "difficulty=hard", "normal"),
    }
)

_SPLIT_OPTIONS = {
    "val": Option(_number(0.0, 1.0, lo_open=True, hi_open=True), "a number strictly between 0 and 1", "val=0.2", 0.2),
    "seed": Option(_integer(0, _MAX_SEED), f"an integer from 0 to {_MAX_SEED}", "seed=0", 0),
}
_LIMIT = Option(_integer(1, 2**62), "a positive integer (images per split)", "limit=1000", None)

KINDS = types.MappingProxyType(
    {
        "cluttered": Kind("cluttered", None, CLUTTERED_OPTIONS, "cluttered:size=64,n=2000,classes=10,seed=0"),
        "folder": Kind("folder", "PATH", types.MappingProxyType(dict(_SPLIT_OPTIONS)), "folder:images/,val=0.2"),
        "idx": Kind("idx", "PATH", types.MappingProxyType({"limit": _LIMIT}), "idx:/usr/share/datasets/fashion-mnist"),
        "tfds": Kind(
            "tfds",
            "NAME",
            types.MappingProxyType(
                {"data_dir": Option(_non_empty, "a directory path", "data_dir=~/tensorflow_datasets"), "limit": _LIMIT}
            ),
            "tfds:mnist,data_dir=/data/tfds,limit=5000",
        ),
    }
)


def _format_value(value):
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class DataSpec:
    """A parsed data spec. ``str(spec)`` is its canonical string, which parses back to an equal spec.

    ``options`` holds only the options that were given, already converted to int, float or str; the
    loaders fill in the defaults. It is a read-only mapping and is left out of the hash.
    """

    kind: str
    arg: str | None = None
    options: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        # Sorted so that equal specs print identically whatever order the options were written in.
        object.__setattr__(self, "options", types.MappingProxyType(dict(sorted(dict(self.options).items()))))

    def __str__(self):
        pieces = [f"{key}={_format_value(value)}" for key, value in self.options.items()]
        if self.arg is None:
            return self.kind + (":" + ",".join(pieces) if pieces else "")
        return ",".join([f"{self.kind}:{self.arg}", *pieces])

    def __reduce__(self):
        # A mappingproxy cannot be pickled or deep-copied: rebuild from a plain dict instead.
        return (DataSpec, (self.kind, self.arg, dict(self.options)))

    def __repr__(self):
        return f"DataSpec(kind={self.kind!r}, arg={self.arg!r}, options={dict(self.options)!r})"


def _split_options(kind, text, rest):
    """Split what follows ``kind:`` into (argument, option pieces)."""
    pieces = rest.split(",")
    if kind.arg is None:
        return None, pieces
    # The argument is everything before the longest run of trailing key=value pieces.
    start = len(pieces)
    while start > 1 and _OPTION_PIECE.match(pieces[start - 1]):
        start -= 1
    return ",".join(pieces[:start]).strip(), pieces[start:]


def parse_spec(text):
    """Parse a data spec string into a :class:`DataSpec`; a :class:`DataSpec` is returned unchanged."""
    if isinstance(text, DataSpec):
        return text
    if not isinstance(text, str):
        raise UsageError(f"data spec must be a string such as {SPEC_FORMS}, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise UsageError(f"empty data spec: give one of {SPEC_FORMS}")
    name, _, rest = text.partition(":")
    name = name.strip()
    kind = KINDS.get(name)
    if kind is None:
        raise UsageError(
            f"unknown data spec kind {name!r} in {text!r}: accepted kinds are {', '.join(KINDS)}; write one of {SPEC_FORMS}"
        )
    arg, pieces = _split_options(kind, text, rest)
    if kind.arg is not None and not arg:
        raise UsageError(f"data spec {text!r} needs a {kind.arg}: write {kind.name}:{kind.arg}, e.g. {kind.example}")
    if kind.name == "tfds" and not _TFDS_NAME.match(arg):
        raise UsageError(
            f"bad tfds data set name {arg!r} in {text!r}: expected NAME[/CONFIG][:VERSION] in lower case, "
            f"e.g. tfds:mnist or tfds:mnist:3.0.1"
        )
    options = {}
    accepted = ", ".join(kind.options) if kind.options else "none"
    for piece in pieces:
        if not piece.strip():
            continue  # tolerate "cluttered:" and a trailing comma
        key, eq, raw = piece.partition("=")
        key, raw = key.strip(), raw.strip()
        if not eq:
            raise UsageError(
                f"option {piece.strip()!r} in data spec {text!r} is not key=value: write e.g. {kind.example}"
            )
        option = kind.options.get(key)
        if option is None:
            raise UsageError(
                f"unknown option {key!r} for data spec kind {kind.name!r} in {text!r}: accepted options are {accepted}; "
                f"e.g. {kind.example}"
            )
        if key in options:
            raise UsageError(f"option {key!r} is given twice in data spec {text!r}: give it once")
        try:
            value = option.parse(raw)
        except ValueError:
            raise UsageError(
                f"bad value {raw!r} for option {key!r} in data spec {text!r}: expected {option.expected}, "
                f"e.g. {option.example}"
            ) from None
        options[key] = value
    return DataSpec(kind.name, arg, options)


def require_directory(path, message):
    """``path`` expanded, or DataError(``message`` with {path}) where it is not a directory."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise DataError(message.format(path=directory))
    return directory


FOLDER_MISSING = "image folder {path} does not exist or is not a directory: check the path in folder:PATH"
IDX_MISSING = "IDX directory {path} does not exist: point idx:PATH at a directory of IDX files"


def check_data_spec(text):
    """Parse ``text`` and check that the folders it names exist: every mistake a user can make in a data spec
    is reported here, in a fraction of a second, before any model or TensorFlow is loaded."""
    spec = parse_spec(text)
    if spec.kind == "folder":
        require_directory(spec.arg, FOLDER_MISSING)
    elif spec.kind == "idx":
        require_directory(spec.arg, IDX_MISSING)
    source = str(spec.options.get("source", ""))
    if source.startswith("idx:"):
        require_directory(source.removeprefix("idx:"), IDX_MISSING)
    return spec
