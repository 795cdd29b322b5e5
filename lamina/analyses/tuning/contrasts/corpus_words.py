"""Corpus contrasts: spaCy words and tokens of corpus paragraphs (nouns-verbs, proper-nouns, token-length).

Paragraphs are drawn at random over the corpus (seeded) until `max_tokens` model tokens; each is labelled
by spaCy (`data/labels.py`) and read alone. Units of replication: word type x paragraph.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from lamina.analyses.tuning.contrasts.sample_set import (
    CORPUS_UNITS,
    WORD_COLUMNS,
    SampleSet,
    check_pooling,
    finish_rows,
    subsample,
)
from lamina.data.corpus import Document, load_corpus
from lamina.data.labels import add_log_frequency, label_tokens, token_frequency


def corpus_texts(docs: list[Document], max_words: int = 90) -> list[str]:
    """Paragraphs of the documents; a paragraph longer than `max_words` is cut at sentence ends."""
    return corpus_paragraphs(docs, max_words)[0]


def corpus_paragraphs(docs: list[Document], max_words: int = 90) -> tuple[list[str], list[int]]:
    """(paragraph texts, index of the document each comes from); see `corpus_texts`."""
    texts, owner = [], []
    for i, d in enumerate(docs):
        for para in re.split(r"\n\s*\n", d.text):
            para = " ".join(para.split())
            if not para:
                continue
            chunk, n = [], 0
            for sent in re.split(r"(?<=[.!?])\s+", para):
                w = len(sent.split())
                if chunk and n + w > max_words:
                    texts.append(" ".join(chunk))
                    owner.append(i)
                    chunk, n = [], 0
                chunk.append(sent)
                n += w
            if chunk:
                texts.append(" ".join(chunk))
                owner.append(i)
    return texts, owner


def corpus_counts(tokenizer, docs: list[Document] | None = None) -> np.ndarray:
    """Token counts (indexed by id) over a corpus (default: the built-in one): the frequency confound."""
    docs = docs if docs is not None else load_corpus(None)
    ids = [tokenizer(d.text, add_special_tokens=False)["input_ids"] for d in docs]
    return token_frequency(ids, vocab_size=len(tokenizer))


def _limit_texts(texts: list[str], tokenizer, max_tokens: int | None, seed: int = 0) -> list[int]:
    """Indices of texts drawn in a random order (seeded, so every document can contribute) until their model
    tokens add up to at least `max_tokens`; all texts, in order, when None."""
    if not max_tokens:
        return list(range(len(texts)))
    kept, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(texts)):
        if total >= max_tokens:
            break
        kept.append(int(i))
        total += len(tokenizer(texts[i])["input_ids"])
    return kept


def corpus_table(tokenizer, docs, max_docs, max_tokens, max_length, counts, seed: int = 0):
    docs = docs if docs is not None else load_corpus(None)
    if max_docs:
        docs = docs[:max_docs]
    paragraphs, owner = corpus_paragraphs(docs)
    kept = _limit_texts(paragraphs, tokenizer, max_tokens, seed)
    texts = [paragraphs[i] for i in kept]
    table = label_tokens(texts, tokenizer, max_length=max_length)
    table["source_doc"] = np.asarray([owner[i] for i in kept], dtype=int)[table["doc"].to_numpy()] if len(table) else []
    counts = counts if counts is not None else corpus_counts(tokenizer)
    return texts, add_log_frequency(table, counts)


def word_samples(table: pd.DataFrame, word_pooling: str) -> pd.DataFrame:
    """One row per spaCy word (its sub-tokens pooled), with the word's labels and the read token's fields."""
    t = table[table["word_index"] >= 0]
    groups = t.groupby(["doc", "word_index"], sort=True)
    first = groups.head(1).set_index(["doc", "word_index"])
    pos_lists = groups["position"].apply(lambda s: tuple(int(p) for p in s))
    read_rows = groups.tail(1) if word_pooling in ("last", "mean") else groups.head(1)
    read_rows = read_rows.set_index(["doc", "word_index"])
    out = first[[c for c in first.columns if c in WORD_COLUMNS]].copy()
    for col in ("position", "token_id", "token", "char_len", "log_freq", "source_doc"):
        out[col] = read_rows[col]
    out["positions"] = pos_lists if word_pooling == "mean" else [(int(p),) for p in out["position"]]
    return out.reset_index().rename(columns={"doc": "text"})


def part_of_speech(tokenizer, a: str = "NOUN", b: str = "VERB", docs=None, word_pooling: str = "last",
                   max_docs=None, max_tokens=None, max_per_group=None, max_length: int = 128, counts=None,
                   seed: int = 0, contrast: str = "labels", **_) -> SampleSet:
    """spaCy words of part of speech `a` (group A) vs `b` (group B) in the corpus, one sample per word."""
    check_pooling(word_pooling)
    texts, table = corpus_table(tokenizer, docs, max_docs, max_tokens, max_length, counts, seed)
    words = word_samples(table, word_pooling)
    words = words[words["pos"].isin([a, b])].copy()
    words["label"] = words["pos"] == a
    words["group"] = np.where(words["label"], a.lower(), b.lower())
    rows, notes = subsample(finish_rows(words, "word"), max_per_group, seed)
    multi = rows[rows["n_subtokens"] > 1]
    notes.insert(0, f"{len(multi)} of {len(rows)} words span several tokens; read at the {word_pooling} "
                    "sub-token" + (" (mean over sub-tokens)" if word_pooling == "mean" else ""))
    return SampleSet(contrast, texts, rows, "binary", (a.lower(), b.lower()), f"pos {a} vs {b}",
                     f"each spaCy {a} / {b} word of {len(texts)} corpus paragraphs, read at its "
                     f"{word_pooling} sub-token", word_pooling=word_pooling, max_length=max_length, notes=notes,
                     units=CORPUS_UNITS)


def nouns_verbs(tokenizer, **kw) -> SampleSet:
    """spaCy NOUN (A) vs VERB (B) words of the corpus."""
    return part_of_speech(tokenizer, "NOUN", "VERB", contrast="nouns-verbs", **kw)


def proper_nouns(tokenizer, **kw) -> SampleSet:
    """spaCy PROPN (A) vs NOUN (B) words of the corpus."""
    return part_of_speech(tokenizer, "PROPN", "NOUN", contrast="proper-nouns", **kw)


def token_length(tokenizer, docs=None, max_docs=None, max_tokens=None, max_per_group=None,
                 max_length: int = 128, counts=None, seed: int = 0, **_) -> SampleSet:
    """Every corpus token with at least one visible character; label = character length (stripped)."""
    texts, table = corpus_table(tokenizer, docs, max_docs, max_tokens, max_length, counts, seed)
    t = table[table["char_len"] > 0].rename(columns={"doc": "text"}).copy()
    t["positions"] = [(int(p),) for p in t["position"]]
    t["label"] = t["char_len"].astype(float)
    t["group"] = ""
    rows = finish_rows(t)
    notes = []
    if max_per_group and len(rows) > max_per_group:
        notes.append(f"{max_per_group} of {len(rows)} tokens drawn at random (seed {seed})")
        rows = rows.iloc[np.sort(np.random.default_rng(seed).choice(len(rows), max_per_group, replace=False))]
        rows = rows.reset_index(drop=True)
    return SampleSet("token-length", texts, rows, "continuous", None, "token character length",
                     f"every token of {len(texts)} corpus paragraphs (its own character length, spaces stripped)",
                     control=["log_freq"], max_length=max_length, notes=notes, units=CORPUS_UNITS)
