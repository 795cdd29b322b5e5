"""The store's manifest: every setting that determines the stored values, and a key hashed from them.

A store never mixes activations of different settings: opening an existing store with other settings
fails and names each field that differs.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from lamina.errors import InputError

MANIFEST = "manifest.json"


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    import safetensors
    import torch
    import transformers

    from lamina.version import __version__

    return {"lamina": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__}


def write_manifest(folder: Path, settings: dict, extra: dict) -> dict:
    """Create the manifest (atomically), or check that an existing one has the same settings."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    manifest = {"key": settings_key(settings), "settings": settings, **extra}
    if path.exists():
        existing = read_manifest(folder)
        if existing["key"] != manifest["key"]:
            differ = [f"{k}: {existing['settings'].get(k)!r} (stored) vs {settings.get(k)!r} (now)"
                      for k in sorted(set(settings) | set(existing["settings"]))
                      if existing["settings"].get(k) != settings.get(k)]
            raise InputError(f"{folder} holds a store made with other settings; refusing to mix. Differs: "
                             + "; ".join(differ) + ". Use another --out")
        return existing
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, path)
    return manifest


def stored_counts(manifest: dict) -> dict:
    """What a store read: documents, windows, tokens (the `counts` field), and the corpus's document count.

    Stores made before the field existed give the corpus's document count only (`documents_read`: None)."""
    if "counts" in manifest:
        return dict(manifest["counts"])
    return {"documents_read": None, "windows": manifest.get("n_windows"), "tokens_read": None,
            "documents_in_corpus": len(manifest.get("doc_ids", []))}


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{folder} is not an activation store (no {MANIFEST})") from None
    except json.JSONDecodeError:
        raise InputError(f"{path} is corrupted (not JSON)") from None
