"""A report as a list of blocks, rendered to Markdown or to one HTML page from the same list.

Text in blocks is plain: each renderer escapes it for its format, so a stage label or layer name is shown as
written whatever characters it holds. The HTML page has its style inline and loads nothing but the images it
names, by relative path.
"""

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    columns: tuple
    rows: tuple  # of tuples of cell strings
    numeric: tuple  # per column: right-aligned


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Figure:
    src: str  # relative to the report
    caption: str


def _md(text):
    # Characters that would start markup; '_' is left alone (GitHub does not emphasise inside words, and layer
    # names are full of it).
    return re.sub(r"([\\`*\[\]<>|])", r"\\\1", text)


def _md_table(block):
    lines = ["| " + " | ".join(map(_md, block.columns)) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in block.numeric) + "|")
    lines += ["| " + " | ".join(_md(cell).replace("\n", " ") for cell in row) + " |" for row in block.rows]
    return "\n".join(lines)


def _md_code(block):
    fence = "~~~~" if "```" in block.text else "```"
    return f"{fence}\n{block.text.rstrip()}\n{fence}"


_MARKDOWN = {
    Heading: lambda b: "#" * b.level + " " + _md(b.text),
    Paragraph: lambda b: _md(b.text),
    Table: _md_table,
    Code: _md_code,
    Figure: lambda b: f"![{_md(b.caption)}]({b.src})\n\n{_md(b.caption)}",
}


def to_markdown(blocks):
    return "\n\n".join(_MARKDOWN[type(b)](b) for b in blocks) + "\n"


_e = html.escape


def _html_table(block):
    def row(cells, tag):
        attrs = [' class="num"' if n else "" for n in block.numeric]
        return "<tr>" + "".join(f"<{tag}{a}>{_e(c)}</{tag}>" for c, a in zip(cells, attrs, strict=True)) + "</tr>"

    body = "\n".join(row(cells, "td") for cells in block.rows)
    return f"<table>\n<thead>{row(block.columns, 'th')}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


_HTML = {
    Heading: lambda b: f"<h{b.level}>{_e(b.text)}</h{b.level}>",
    Paragraph: lambda b: f"<p>{_e(b.text)}</p>",
    Table: _html_table,
    Code: lambda b: f"<pre><code>{_e(b.text.rstrip())}</code></pre>",
    Figure: lambda b: (
        f'<figure><img src="{_e(b.src)}" alt="{_e(b.caption)}"><figcaption>{_e(b.caption)}</figcaption></figure>'
    ),
}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
th { background: #f0f0f0; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.8rem; white-space: pre-wrap; font-size: 0.85rem; }
figure { margin: 1.5rem 0; }
img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
"""


def to_html(blocks, title):
    body = "\n".join(_HTML[type(b)](b) for b in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
