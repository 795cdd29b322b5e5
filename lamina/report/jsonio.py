"""JSON for every result lamina writes or prints, with one policy for the numbers JSON cannot hold.

NaN and +-inf become null: the output is strict JSON (jq, JavaScript and pandas read it), and a number
that is not defined reads as missing, never as a value. numpy and torch scalars and arrays become Python
numbers and lists; paths and anything else unknown become their text.
"""
from __future__ import annotations

import json
import math
from pathlib import Path


def plain(value):
    """`value` with every container walked and every leaf made a JSON value (NaN and +-inf: None)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, float):                    # includes numpy.float64, a float subclass
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if hasattr(value, "tolist"):                    # numpy / torch scalars and arrays
        return plain(value.tolist())
    return str(value)


def json_text(value, indent: int = 2) -> str:
    """Indented strict JSON text of a result."""
    return json.dumps(plain(value), indent=indent, allow_nan=False)


def write_json(path: Path, value, indent: int = 1) -> Path:
    """Write a result as strict JSON to `path`; returns the path."""
    path = Path(path)
    path.write_text(json_text(value, indent))
    return path
