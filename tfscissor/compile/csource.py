"""Writing C/C++ source: byte arrays, string literals, identifiers, and the packaged templates.

Templates live in the repository's ``firmware/<group>/`` (installed as the package ``tfscissor.firmware``) and mark values as ``{{ name }}``. The marker is neither C
nor Make syntax (``$`` is everywhere in a Makefile, so ``string.Template`` would need escaping throughout).
"""

import re
from importlib import resources

from tfscissor.errors import UsageError

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One formatted token per byte value, looked up rather than formatted: a 1 MB model is 1M tokens.
_HEX = [f"0x{i:02x}," for i in range(256)]


def c_identifier(name, what="name"):
    """Return ``name`` if it can be part of a C/C++ identifier (the project prefixes it: ``g_<name>``)."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise UsageError(
            f"{what} {name!r} is not a C identifier: use letters, digits and underscores, not starting with a digit"
        )
    return name


def c_string(text):
    """A C string literal for ``text`` (UTF-8), escaping everything outside printable ASCII."""
    out = []
    for byte in str(text).encode("utf-8"):
        char = chr(byte)
        if char in '"\\?':  # '?' too: "??x" would be a trigraph in older C dialects
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")  # always 3 octal digits, so a following digit cannot join the escape
    return '"' + "".join(out) + '"'


def c_float(value):
    """A float literal that reads back as the same float32 (Python's repr is the shortest exact form)."""
    return f"{float(value)!r}f"


def c_byte_rows(data, per_line=12, indent="    "):
    """The body of an ``unsigned char`` array initialiser, ``per_line`` bytes a line, like ``xxd -i``."""
    data = bytes(data)
    return "\n".join(
        indent + " ".join(map(_HEX.__getitem__, data[start : start + per_line]))
        for start in range(0, len(data), per_line)
    )


def c_int_rows(values, per_line=16, indent="    "):
    """The body of an integer array initialiser."""
    values = [int(v) for v in values]
    return "\n".join(
        indent + " ".join(f"{v}," for v in values[start : start + per_line])
        for start in range(0, len(values), per_line)
    )


def template(group, name):
    """The text of template ``firmware/<group>/<name>``."""
    return resources.files("tfscissor.firmware").joinpath(group).joinpath(name).read_text(encoding="utf-8")


def render(text, **values):
    """Fill ``{{ name }}`` markers; a marker without a value is a bug in the caller, so it raises KeyError."""
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)
