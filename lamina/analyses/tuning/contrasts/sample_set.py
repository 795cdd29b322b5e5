"""What a contrast reads: the `SampleSet` (texts, and one row per sample), and the row helpers every contrast
builder uses (tokenizing a text with offsets, the token fields and confounds of a read token, the unit
columns, subsampling per group).

Positions index `tokenizer(text)` with its default special tokens, truncated at `max_length`, i.e. the
model's input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from lamina.errors import InputError

WORD_POOLING = ("last", "first", "mean")
# label columns that describe the spaCy word (pooled per word); the others describe the token itself
WORD_COLUMNS = {"word", "pos", "tag", "dep", "is_noun", "is_verb", "is_propn", "is_entity", "ent_type",
                "is_negation", "is_sentence_start", "is_capitalized", "n_subtokens"}
SAMPLE_COLUMNS = ["text", "positions", "position", "token_id", "token", "word", "n_subtokens", "label",
                  "group", "pair", "char_len", "log_freq", "word_type", "paragraph", "doc"]
CORPUS_UNITS = ("word_type", "paragraph")  # the units of replication of corpus samples (two-way clustered)


@dataclass


class SampleSet:
    """What a contrast reads: texts, and one row per sample (see SAMPLE_COLUMNS)."""

    contrast: str
    texts: list[str]
    rows: pd.DataFrame          # text, positions (the tokens read: one, or a word's sub-tokens averaged for
                                # word_pooling="mean"), position (the read token the token fields describe), label
    kind: str                   # "binary" | "continuous"
    groups: tuple[str, str] | None  # (A, B): A is the positive group (label True); differences are A - B
    label_name: str
    reading: str                # which token is read, in words, for the report
    paired: bool = False        # row i of A pairs with row i of B (in order of appearance)
    word_pooling: str = "last"
    control: list[str] = field(default_factory=list)  # continuous: columns partialled out
    max_length: int = 128
    notes: list[str] = field(default_factory=list)    # everything a reader should know: splits, drops
    split_report: pd.DataFrame | None = None           # words the tokenizer splits into several tokens
    units: tuple = ()           # the unit(s) of replication: row columns (word_type, paragraph, ...); () = each
                                # row independent; paired designs use the pair

    @property
    def y(self) -> np.ndarray:
        lab = self.rows["label"].to_numpy()
        return lab.astype(bool) if self.kind == "binary" else lab.astype(float)

    def group_sizes(self) -> dict[str, int]:
        if self.kind != "binary":
            return {"samples": len(self.rows)}
        y = self.y
        return {self.groups[0]: int(y.sum()), self.groups[1]: int((~y).sum())}

    def describe(self) -> str:
        sizes = ", ".join(f"{k} n={v}" for k, v in self.group_sizes().items())
        return f"{self.contrast}: {sizes}; {self.reading}"

    def unit_counts(self) -> dict[str, int]:
        """Distinct levels of each unit column the rows carry (word types, paragraphs, documents, pairs)."""
        cols = [c for c in ("word_type", "paragraph", "doc", "pair") + tuple(self.units) if c in self.rows]
        return {c: int(self.rows[c].nunique()) for c in dict.fromkeys(cols)
                if not (c == "pair" and not self.paired)}


def builtin_file(name: str) -> Path:
    return Path(str(resources.files("lamina.data") / "contrasts" / name))


def read_lines(path, what: str) -> list[str]:
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {what} file {path}: {getattr(err, 'strerror', None) or err}") from None
    lines = [s.strip() for s in content.splitlines()]
    lines = [s for s in lines if s and not s.startswith("#")]
    if not lines:
        raise InputError(f"{what} file {path} is empty")
    return lines


def encode_text(tokenizer, text: str, max_length: int):
    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    special = set(tokenizer.all_special_ids)
    is_special = [bool(m) or i in special for m, i in zip(enc["special_tokens_mask"], enc["input_ids"])]
    return list(enc["input_ids"]), list(enc["offset_mapping"]), is_special


def span_positions(offsets, is_special, start: int, end: int) -> tuple[int, ...]:
    """Positions of the tokens whose characters overlap [start, end) (leading spaces do not count)."""
    return tuple(i for i, ((a, b), s) in enumerate(zip(offsets, is_special))
                 if not s and min(b, end) - max(a, start) > 0)


def last_real(is_special) -> int:
    return max(i for i, s in enumerate(is_special) if not s)


def read_position(positions: tuple[int, ...], word_pooling: str) -> int:
    return positions[0] if word_pooling == "first" else positions[-1]


def subsample(rows: pd.DataFrame, max_per_group: int | None, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """At most `max_per_group` random rows per group (unpaired designs), order kept."""
    if not max_per_group:
        return rows, []
    rng, keep, notes = np.random.default_rng(seed), [], []
    for g, idx in rows.groupby("group", sort=False).indices.items():
        if len(idx) > max_per_group:
            notes.append(f"group {g}: {max_per_group} of {len(idx)} samples drawn at random (seed {seed})")
            idx = np.sort(rng.choice(idx, max_per_group, replace=False))
        keep.append(idx)
    return rows.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True), notes


def check_pooling(word_pooling: str) -> None:
    if word_pooling not in WORD_POOLING:
        raise InputError(f"unknown --word-pooling '{word_pooling}'; choose one of {', '.join(WORD_POOLING)}")


def finish_rows(rows: list[dict] | pd.DataFrame, type_column: str = "token") -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if len(df):
        df = add_units(df, type_column)
    for col in SAMPLE_COLUMNS:
        if col not in df:
            df[col] = -1 if col == "pair" else ("" if col in ("word", "group", "token") else np.nan)
    return df[SAMPLE_COLUMNS + [c for c in df.columns if c not in SAMPLE_COLUMNS]]


def token_fields(tokenizer, ids, position: int, counts) -> dict:
    tid = int(ids[position])
    token = tokenizer.decode([tid])
    freq = counts[tid] if counts is not None and tid < len(counts) else 0
    return {"token_id": tid, "token": token, "char_len": len(token.strip()), "log_freq": float(np.log1p(freq))}


def normalize_type(s) -> str:
    """The word type of a word or token string: stripped and lowercased."""
    return str(s).strip().lower()


def add_units(df: pd.DataFrame, type_column: str) -> pd.DataFrame:
    """Unit columns of sample rows: `word_type` (the normalized `type_column` string), `paragraph` (the text
    index), `doc` (the source document: `source_doc` for corpus rows, else the text)."""
    df = df.copy()
    df["word_type"] = df[type_column].map(normalize_type)
    df["paragraph"] = df["text"].astype(int)
    df["doc"] = df["source_doc"].astype(int) if "source_doc" in df else df["text"].astype(int)
    return df.drop(columns=["source_doc"], errors="ignore")
