"""Matplotlib without a display, and one way to write a figure: tight layout, PNG, figure closed."""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 120, tight: bool = True) -> Path:
    """Write `fig` as a PNG at `path` (folders created) and free it; `tight=False` keeps the caller's layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
