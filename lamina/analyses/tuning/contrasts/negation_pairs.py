"""The negation contrast: matched sentence pairs with and without a negation, read at the same token (paired)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lamina.analyses.tuning.contrasts.corpus_words import corpus_counts
from lamina.analyses.tuning.contrasts.sample_set import (
    SampleSet,
    builtin_file,
    encode_text,
    finish_rows,
    last_real,
    read_lines,
    token_fields,
)
from lamina.errors import InputError

NEGATION_READ = ("after-edit", "final")


def read_pairs(path=None) -> list[tuple[str, str]]:
    """(affirmed, negated) sentence pairs from a two-column TSV with a header (default: the built-in 233)."""
    path = path or builtin_file("negation_pairs.tsv")
    lines = read_lines(path, "negation pairs")
    pairs = []
    for n, line in enumerate(lines[1:], 2):
        cols = line.split("\t")
        if len(cols) != 2 or not all(c.strip() for c in cols):
            raise InputError(f"{path}:{n}: expected 'affirmed<TAB>negated', got {line[:60]!r}")
        pairs.append((cols[0].strip(), cols[1].strip()))
    return pairs


def negation(tokenizer, pairs=None, read: str = "after-edit", max_per_group=None, max_length: int = 128,
             counts=None, seed: int = 0, **_) -> SampleSet:
    """Matched pairs: negated (A) vs affirmed (B), same sentence otherwise; paired design."""
    if read not in NEGATION_READ:
        raise InputError(f"unknown negation reading '{read}'; choose one of {', '.join(NEGATION_READ)}")
    pairs = read_pairs(pairs) if pairs is None or isinstance(pairs, (str, Path)) else list(pairs)
    notes = []
    if max_per_group and len(pairs) > max_per_group:
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), max_per_group, replace=False))
        notes.append(f"{max_per_group} of {len(pairs)} pairs drawn at random (seed {seed})")
        pairs = [pairs[i] for i in keep]
    counts = counts if counts is not None else corpus_counts(tokenizer)
    texts, rows, fallback = [], [], 0
    for i, (aff, neg) in enumerate(pairs):
        (ia, _, sa), (ineg, _, sn) = encode_text(tokenizer, aff, max_length), encode_text(tokenizer, neg, max_length)
        if read == "final":
            pa, pn = last_real(sa), last_real(sn)
        else:
            s = 0  # common suffix of real tokens
            while (s < min(len(ia), len(ineg)) and ia[-1 - s] == ineg[-1 - s]):
                s += 1
            pa, pn = len(ia) - s, len(ineg) - s
            if s == 0 or sa[pa] or sn[pn] or ia == ineg:
                pa, pn, fallback = last_real(sa), last_real(sn), fallback + 1
        for text, ids, p, label in ((neg, ineg, pn, True), (aff, ia, pa, False)):
            rows.append({"text": len(texts), "positions": (p,), "position": p, "label": label,
                         "group": "negated" if label else "affirmed", "pair": i, "n_subtokens": 1,
                         **token_fields(tokenizer, ids, p, counts)})
            texts.append(text)
    if fallback:
        notes.append(f"{fallback} pairs have no common ending after the edit; read at their final token")
    where = ("the first token after the edit (the same token in both sentences of a pair)"
             if read == "after-edit" else "the final token of each sentence")
    return SampleSet("negation", texts, finish_rows(rows), "binary", ("negated", "affirmed"), "negation",
                     f"{len(pairs)} matched sentence pairs, read at {where}", paired=True,
                     max_length=max_length, notes=notes, units=("pair",))
