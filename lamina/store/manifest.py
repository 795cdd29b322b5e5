"""The store's manifest: every setting that determines the stored values, and a key hashed from them.

A store never mixes activations of different settings: opening an existing store with other settings
fails and names each field that differs. A manifest is checked when it is read (`check_manifest`: types,
ranges, a known format, site names that are plain file names), so a store from someone else is refused in
one line instead of failing later in a traceback.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from lamina.errors import InputError, StoreError

MANIFEST = "manifest.json"
FORMAT = 1                                                   # the store layout this lamina writes and reads
STORAGE_DTYPES = ("float16", "bfloat16", "float32")
MAX_NAME = 200


def check_site_name(name) -> str | None:
    """What makes `name` unusable as a stored site's name (it names files: index/SITE.safetensors), or None."""
    if not isinstance(name, str) or not name.strip():
        return f"site name {name!r} is not a name"
    if len(name) > MAX_NAME or any(c in name for c in "/\\\0") or name.startswith(".") or ".." in name:
        return f"site name {name[:MAX_NAME]!r} is not a plain name (it holds a path or is too long)"
    return None


def _count(value, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_manifest(manifest, path: Path) -> dict:
    """The manifest, checked: a known format, the fields the readers use with their types and ranges."""
    def bad(what: str):
        raise StoreError(f"{path}: {what}; this is not a store lamina can read (re-extract it with lamina extract)")

    if not isinstance(manifest, dict):
        bad("not a JSON object")
    version = manifest.get("format", FORMAT)                  # stores written before the field hold format 1
    if version != FORMAT:
        if _count(version) and version > FORMAT:
            raise StoreError(f"{path}: store format {version}, newer than this lamina reads ({FORMAT}); "
                             "upgrade lamina")
        bad(f"unknown store format {version!r}")
    settings = manifest.get("settings")
    if not isinstance(manifest.get("key"), str) or not isinstance(settings, dict):
        bad("no 'key' or 'settings'")
    if not isinstance(settings.get("model"), str) or not settings["model"]:
        bad("settings.model is not a model spec")
    sites = settings.get("sites")
    if not isinstance(sites, list) or not sites or len(set(map(str, sites))) != len(sites):
        bad("settings.sites is not a list of distinct sites")
    for site in sites:
        problem = check_site_name(site)
        if problem:
            bad(problem)
    if settings.get("storage_dtype") not in STORAGE_DTYPES:
        bad(f"settings.storage_dtype {settings.get('storage_dtype')!r} is not one of {', '.join(STORAGE_DTYPES)}")
    if not _count(settings.get("context"), 1):
        bad(f"settings.context {settings.get('context')!r} is not a count of tokens")
    if not _count(manifest.get("n_shards")):
        bad(f"n_shards {manifest.get('n_shards')!r} is not a count")
    doc_ids = manifest.get("doc_ids")
    if not isinstance(doc_ids, list) or not all(isinstance(d, str) for d in doc_ids):
        bad("doc_ids is not a list of document ids")
    return manifest


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
    manifest = {"key": settings_key(settings), "settings": settings, "format": FORMAT, **extra}
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
    if Path(folder).exists() and not Path(folder).is_dir():
        raise InputError(f"{folder} is a file, not a folder; give the store's folder (lamina extract --out)")
    try:
        return check_manifest(json.loads(path.read_text()), path)
    except FileNotFoundError:
        raise InputError(f"{folder} is not an activation store (no {MANIFEST})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path} is corrupted (not JSON)") from None
