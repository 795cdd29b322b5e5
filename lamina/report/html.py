"""The report pages' HTML as data: sections of blocks (notes, tables, images) rendered by one page template.

A section is a heading and a list of blocks; a block is a dict whose `kind` names a macro of
`report/templates/blocks.html` (Jinja2, autoescape on) and whose other keys are plain values: numbers, strings,
lists of rows. No block carries pre-built HTML, so text from a corpus, a tokenizer, a settings file or a folder
name reaches a page only through autoescape.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from urllib.parse import quote

import numpy as np


def image(path: Path) -> dict:
    """A PNG embedded as a data URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return {"kind": "image", "src": f"data:image/png;base64,{data}", "alt": Path(path).name}


def figure(path: Path) -> dict | None:
    """`image(path)` when the file exists (a verb that skipped its figure), else nothing."""
    return image(path) if Path(path).is_file() else None


def cell(value, float_format: str = "{:.4g}") -> str:
    """One table cell as text, as pandas' `to_html` wrote it: floats to 4 significant digits, NaN as NaN."""
    if isinstance(value, (float, np.floating)):
        return "NaN" if math.isnan(value) else float_format.format(value)
    return str(value)


def table(frame, float_format: str = "{:.4g}", max_rows: int = 200) -> dict:
    """A DataFrame's first `max_rows` rows as column names and rows of cell texts."""
    head = frame.head(max_rows)
    rows = [[cell(v, float_format) for v in row] for row in head.itertuples(index=False, name=None)]
    return {"kind": "table", "columns": [str(c) for c in head.columns], "rows": rows}


def text(words: str) -> dict:
    """A plain paragraph."""
    return {"kind": "text", "text": words}


def block(kind: str, **values) -> dict:
    """A block drawn by the macro `kind` of blocks.html from `values`."""
    return {"kind": kind, **values}


def link(path: str) -> dict:
    """A relative link to another page: `./` and percent-encoding keep a folder name from becoming a URL scheme."""
    return {"href": "./" + quote(path), "text": path}


def section(heading: str, *blocks) -> dict:
    """A heading and its blocks (None blocks, such as a missing figure, left out)."""
    return {"heading": heading, "blocks": [b for b in blocks if b is not None]}


def page(title: str, sections: list[dict]) -> str:
    """A full HTML document from `section`s."""
    from lamina.report.templating import environment

    return environment("lamina.report").get_template("page.html").render(title=title, sections=sections)
