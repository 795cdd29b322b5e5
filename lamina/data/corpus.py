"""Corpora: the built-in sample corpus, plain-text files, JSONL, folders, and Hugging Face datasets.

Every source becomes a list of `Document`s with a stable id; `fingerprint` hashes ids and texts so that
an activation store can refuse to mix activations of different corpora.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lamina.errors import InputError
from lamina.validate import limit

BUILTIN = "builtin"


@dataclass(frozen=True)
class Document:
    id: str
    text: str


def builtin_corpus() -> list[Document]:
    """The sample corpus shipped with lamina: original English prose, about 55,000 words in 30 documents."""
    folder = resources.files("lamina.data") / "corpus"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".txt"))
    return [Document(p.name.removesuffix(".txt"), p.read_text(encoding="utf-8")) for p in files]


def load_corpus(source: str | Path | None = None, text_field: str = "text",
                max_docs: int | None = None) -> list[Document]:
    """Documents from `source`: None/'builtin', a .txt file, a .jsonl file, a folder, or 'hf:NAME[:SPLIT]'.

    `max_docs`: the first N documents; None or 0 for all of them."""
    max_docs = limit("max_docs", max_docs)
    if source is None or str(source) == BUILTIN:
        docs = builtin_corpus()
    elif str(source).startswith("hf:"):
        docs = _hf_dataset(str(source)[3:], text_field, max_docs)
    else:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl") and p.is_file())
            if not files:
                raise InputError(f"corpus folder {path} has no .txt or .jsonl files")
            docs = [d for f in files for d in _read_file(f, text_field, prefix=str(f.relative_to(path)))]
        elif path.is_file():
            docs = _read_file(path, text_field, prefix=path.name)
        else:
            raise InputError(f"corpus {source} does not exist (give a file, a folder, 'builtin' or hf:NAME)")
    docs = [d for d in docs if d.text.strip()]
    if max_docs:
        docs = docs[:max_docs]
    if not docs:
        raise InputError(f"corpus {source or BUILTIN} has no non-empty documents")
    return docs


def _read_file(path: Path, text_field: str, prefix: str) -> list[Document]:
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read corpus file {path}: {getattr(err, 'strerror', None) or err}") from None
    if path.suffix != ".jsonl":
        return [Document(prefix, content)]
    docs = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path}:{number} is not valid JSON") from None
        if not isinstance(record, dict) or text_field not in record:
            raise InputError(f"{path}:{number} has no field '{text_field}' (choose one with --text-field)")
        text = record[text_field]
        if not isinstance(text, str):
            what = "null" if text is None else f"a {type(text).__name__}"
            raise InputError(f"{path}:{number}: field '{text_field}' is {what}, not text; fix or remove that line")
        docs.append(Document(f"{prefix}:{number}", text))
    return docs


def _hf_dataset(name: str, text_field: str, max_docs: int | None) -> list[Document]:
    dataset, _, split = name.partition(":")
    try:
        import datasets
    except ImportError:
        raise InputError("hf: corpora need the datasets package: pip install datasets") from None
    try:
        data = datasets.load_dataset(dataset, split=split or "train", streaming=True)
    except Exception as err:  # offline, unknown name: the library raises many kinds
        raise InputError(f"cannot load dataset '{dataset}': {str(err).splitlines()[0][:200]}") from None
    docs = []
    for i, record in enumerate(data):
        if max_docs and i >= max_docs:
            break
        if not isinstance(record.get(text_field), str):
            raise InputError(f"dataset '{dataset}' record {i}: field '{text_field}' is not text (choose --text-field)")
        docs.append(Document(f"{dataset}:{i}", record[text_field]))
    return docs


def fingerprint(docs: list[Document]) -> str:
    """sha256 over ids and texts: equal only for the same documents in the same order."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.id.encode() + b"\0" + d.text.encode() + b"\0")
    return h.hexdigest()
