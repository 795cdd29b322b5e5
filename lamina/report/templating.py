"""One template engine for every HTML lamina writes (report pages and the browser): Jinja2, autoescape on.

Text from a store, a tokenizer, a corpus or a result reaches a page only through autoescape (text nodes and
quoted attributes); data for a page's script goes through `script_json`. Tokens are shown with their spaces
visible (`visible_parts`: a space is a dim `·`, a new line `↵`), as text, never as markup.
"""
from __future__ import annotations

import json
import math

from markupsafe import Markup

MARKS = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def script_json(value) -> Markup:
    """JSON that is safe inside `<script>`: `<`, `>`, `&`, U+2028 and U+2029 written as \\u escapes."""
    text = json.dumps(value, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return Markup(text)


def visible_parts(text) -> list[dict]:
    """A token's text in pieces, spaces as `·` and new lines as `↵` marked (shown dim); empty as `∅`."""
    text = "" if text is None else str(text)
    if not text:
        return [{"text": "∅", "mark": True}]
    parts, plain = [], []
    for ch in text:
        mark = MARKS.get(ch)
        if mark is None:
            plain.append(ch)
            continue
        if plain:
            parts.append({"text": "".join(plain), "mark": False})
            plain = []
        parts.append({"text": mark, "mark": True})
    if plain:
        parts.append({"text": "".join(plain), "mark": False})
    return parts


def fmt(x) -> str:
    """A table cell: floats to 4 significant digits, NaN and None empty."""
    if x is None:
        return ""
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.4g}"
    return str(x)


def num(value, spec: str = ".4g") -> str:
    """A number of a result in `spec`'s format; a value that was not defined (None) as `n/a`."""
    return "n/a" if value is None else format(value, spec)


def environment(package: str):
    """A Jinja2 environment over `package`'s templates/ folder: autoescape on for every template."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader(package, "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=False)
    env.filters.update(script_json=script_json, visible_parts=visible_parts, fmt=fmt, num=num,
                       g3=lambda x: "" if x is None else f"{x:.3g}", g4=lambda x: "" if x is None else f"{x:.4g}",
                       repr=repr, thousands=lambda n: f"{n:,}")
    return env
