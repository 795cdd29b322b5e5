"""Input texts from the command line: `--text` values and `--file` (one text per non-blank line)."""
from __future__ import annotations

from pathlib import Path

from lamina.errors import InputError


def read_texts(texts: list[str] | None = None, file: Path | None = None) -> list[str] | None:
    """The texts given, or None when neither option was used (callers fall back to their defaults)."""
    out = [t for t in (texts or [])]
    if file is not None:
        try:
            content = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read --file {file}: {getattr(err, 'strerror', None) or err}") from None
        lines = [line.strip() for line in content.splitlines() if line.strip()]
        if not lines:
            raise InputError(f"--file {file} has no text")
        out += lines
    if (texts or file is not None) and any(not t.strip() for t in out):
        raise InputError("empty text: give at least one non-blank text")
    return out or None
