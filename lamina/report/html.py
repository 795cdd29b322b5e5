"""A small, dependency-free HTML page builder: sections of text, tables and embedded PNG images."""
from __future__ import annotations

import base64
import html
from pathlib import Path

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #446}h2{margin-top:2em;color:#335}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{background:#f7f7fb;border-left:4px solid #88a;padding:.6em 1em}.bad{color:#b00}.good{color:#070}
"""


def image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


def table(frame, float_format: str = "{:.4g}", max_rows: int = 200) -> str:
    return frame.head(max_rows).to_html(index=False, border=0, float_format=float_format.format, escape=True)


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A full HTML document: `sections` are (heading, inner HTML)."""
    body = "".join(f"<h2>{html.escape(h)}</h2>\n{inner}\n" for h, inner in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>")
