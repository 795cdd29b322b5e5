"""The report pages' HTML: sections of text, tables and embedded PNG images in one page template.

`page` renders `report/templates/page.html` (Jinja2, autoescape on): the title and headings are escaped there;
a section's inner HTML comes from `table` (pandas' `to_html` with escaping on), `image`, or a builder that
escapes its own text.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from markupsafe import Markup


def image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


def table(frame, float_format: str = "{:.4g}", max_rows: int = 200) -> str:
    return frame.head(max_rows).to_html(index=False, border=0, float_format=float_format.format, escape=True)


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A full HTML document: `sections` are (heading, inner HTML)."""
    from lamina.report.templating import environment

    return environment("lamina.report").get_template("page.html").render(
        title=title, sections=[(heading, Markup(inner)) for heading, inner in sections])
