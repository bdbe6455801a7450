"""What commands print: one JSON object, or aligned plain-text tables."""

import json

import click


def emit(as_json, payload, lines):
    if as_json:
        click.echo(json.dumps(payload, indent=None, sort_keys=True))
    else:
        for line in lines:
            click.echo(line)


def format_table(rows, columns):
    """Rows of dicts to an aligned plain-text table; numbers right-aligned."""
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) or row.get(c) is None for row in rows) for c in columns]

    def fmt(values):
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return [fmt(columns), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)]


def cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
