"""Contrasts: which texts go through the model, and which token of which text is a sample of which group.

Every builder returns a `SampleSet`: the texts, and one row per sample saying which text it comes from,
which token position(s) are read there, its label (group A = positive, or a continuous value) and its
confounds (character length and log corpus frequency of the token read). Positions index
`tokenizer(text)` with its default special tokens, truncated at `max_length`, i.e. the model's input.

Built in:
    nouns-verbs    spaCy NOUN vs VERB words of the corpus, each word read at its last / first / mean
                   sub-token (`word_pooling`)
    proper-nouns   spaCy PROPN vs NOUN words of the corpus (same reading)
    token-length   every corpus token, label = its character length (continuous), control = log frequency
    negation       matched pairs: the same sentence with and without a negation. Read at the first token
                   after the edit (the same token in both sentences; the prefix before the edit is
                   identical, so a causal model differs only through the negation) or at the final token.
                   Row i of the negated group is paired with row i of the affirmed group: paired t.
    category       two word lists (each word in one carrier sentence), or two sentence files (read at the
                   final token, or at each listed word when word lists are also given)
    labels         any label column of the corpus's token table (`is_entity`, `pos=ADJ`, `char_len`, ...)
                   or of a user table with a `text` column
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from lamina.data.corpus import Document, load_corpus
from lamina.data.labels import COLUMNS as LABEL_COLUMNS
from lamina.data.labels import add_log_frequency, label_tokens, split_report, token_frequency
from lamina.errors import InputError

CONTRASTS = ("nouns-verbs", "negation", "proper-nouns", "token-length", "category", "labels")
WORD_POOLING = ("last", "first", "mean")
CARRIER = "The next word is {word}."
NEGATION_READ = ("after-edit", "final")
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


# --------------------------------------------------------------------------- helpers
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


def _read(positions: tuple[int, ...], word_pooling: str) -> int:
    return positions[0] if word_pooling == "first" else positions[-1]


def _subsample(rows: pd.DataFrame, max_per_group: int | None, seed: int) -> tuple[pd.DataFrame, list[str]]:
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


def _check_pooling(word_pooling: str) -> None:
    if word_pooling not in WORD_POOLING:
        raise InputError(f"unknown --word-pooling '{word_pooling}'; choose one of {', '.join(WORD_POOLING)}")


def _finish(rows: list[dict] | pd.DataFrame, type_column: str = "token") -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if len(df):
        df = add_units(df, type_column)
    for col in SAMPLE_COLUMNS:
        if col not in df:
            df[col] = -1 if col == "pair" else ("" if col in ("word", "group", "token") else np.nan)
    return df[SAMPLE_COLUMNS + [c for c in df.columns if c not in SAMPLE_COLUMNS]]


def _token_fields(tokenizer, ids, position: int, counts) -> dict:
    tid = int(ids[position])
    token = tokenizer.decode([tid])
    freq = counts[tid] if counts is not None and tid < len(counts) else 0
    return {"token_id": tid, "token": token, "char_len": len(token.strip()), "log_freq": float(np.log1p(freq))}


# --------------------------------------------------------------------------- corpus contrasts
def _corpus_table(tokenizer, docs, max_docs, max_tokens, max_length, counts, seed: int = 0):
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


def _word_samples(table: pd.DataFrame, word_pooling: str) -> pd.DataFrame:
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
    _check_pooling(word_pooling)
    texts, table = _corpus_table(tokenizer, docs, max_docs, max_tokens, max_length, counts, seed)
    words = _word_samples(table, word_pooling)
    words = words[words["pos"].isin([a, b])].copy()
    words["label"] = words["pos"] == a
    words["group"] = np.where(words["label"], a.lower(), b.lower())
    rows, notes = _subsample(_finish(words, "word"), max_per_group, seed)
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
    texts, table = _corpus_table(tokenizer, docs, max_docs, max_tokens, max_length, counts, seed)
    t = table[table["char_len"] > 0].rename(columns={"doc": "text"}).copy()
    t["positions"] = [(int(p),) for p in t["position"]]
    t["label"] = t["char_len"].astype(float)
    t["group"] = ""
    rows = _finish(t)
    notes = []
    if max_per_group and len(rows) > max_per_group:
        notes.append(f"{max_per_group} of {len(rows)} tokens drawn at random (seed {seed})")
        rows = rows.iloc[np.sort(np.random.default_rng(seed).choice(len(rows), max_per_group, replace=False))]
        rows = rows.reset_index(drop=True)
    return SampleSet("token-length", texts, rows, "continuous", None, "token character length",
                     f"every token of {len(texts)} corpus paragraphs (its own character length, spaces stripped)",
                     control=["log_freq"], max_length=max_length, notes=notes, units=CORPUS_UNITS)


# --------------------------------------------------------------------------- negation
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


def _last_real(is_special) -> int:
    return max(i for i, s in enumerate(is_special) if not s)


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
            pa, pn = _last_real(sa), _last_real(sn)
        else:
            s = 0  # common suffix of real tokens
            while (s < min(len(ia), len(ineg)) and ia[-1 - s] == ineg[-1 - s]):
                s += 1
            pa, pn = len(ia) - s, len(ineg) - s
            if s == 0 or sa[pa] or sn[pn] or ia == ineg:
                pa, pn, fallback = _last_real(sa), _last_real(sn), fallback + 1
        for text, ids, p, label in ((neg, ineg, pn, True), (aff, ia, pa, False)):
            rows.append({"text": len(texts), "positions": (p,), "position": p, "label": label,
                         "group": "negated" if label else "affirmed", "pair": i, "n_subtokens": 1,
                         **_token_fields(tokenizer, ids, p, counts)})
            texts.append(text)
    if fallback:
        notes.append(f"{fallback} pairs have no common ending after the edit; read at their final token")
    where = ("the first token after the edit (the same token in both sentences of a pair)"
             if read == "after-edit" else "the final token of each sentence")
    return SampleSet("negation", texts, _finish(rows), "binary", ("negated", "affirmed"), "negation",
                     f"{len(pairs)} matched sentence pairs, read at {where}", paired=True,
                     max_length=max_length, notes=notes, units=("pair",))


# --------------------------------------------------------------------------- category
def _words(path, default: str, what: str, notes: list[str]) -> list[str]:
    words = read_lines(path or builtin_file(default), what)
    seen, out = set(), []
    for w in words:
        if w in seen:
            continue
        seen.add(w)
        out.append(w)
    if len(out) < len(words):
        notes.append(f"{what}: {len(words) - len(out)} duplicate words ignored")
    return out


def _split_note(report: pd.DataFrame, name: str, word_pooling: str) -> str | None:
    if report.empty:
        return None
    shown = "; ".join(f"{r.word} -> {'|'.join(r.tokens)}" for r in report.head(12).itertuples())
    more = f" and {len(report) - 12} more" if len(report) > 12 else ""
    return (f"group {name}: {len(report)} words split into several tokens (kept, read at the {word_pooling} "
            f"sub-token): {shown}{more}")


def category(tokenizer, words_a=None, words_b=None, sentences_a=None, sentences_b=None,
             names: tuple[str, str] | None = None, word_pooling: str = "last", carrier: str = CARRIER,
             max_per_group=None, max_length: int = 128, counts=None, seed: int = 0, **_) -> SampleSet:
    """Category A vs B: words in a carrier sentence, or sentences (at each listed word, or the final token).

    Default: the built-in dental (A) vs household (B) word lists. Words the tokenizer splits are kept
    and listed in `split_report` and the notes, never dropped silently.
    """
    _check_pooling(word_pooling)
    if "{word}" not in carrier:
        raise InputError("the carrier sentence must contain {word}")
    if (sentences_a is None) != (sentences_b is None):
        raise InputError("give both --sentences-a and --sentences-b, or neither")
    if (words_a is None) != (words_b is None):
        raise InputError("give both --words-a and --words-b, or neither")
    use_sentences = sentences_a is not None
    builtin_words = words_a is None and not use_sentences
    if names is None:
        names = ("dental", "household") if builtin_words else (
            _stem(sentences_a if use_sentences and words_a is None else words_a),
            _stem(sentences_b if use_sentences and words_b is None else words_b))
        if names[0] == names[1]:
            names = ("A", "B")
    notes: list[str] = []
    counts = counts if counts is not None else corpus_counts(tokenizer)
    lists = None
    if words_a is not None or builtin_words:
        lists = (_words(words_a, "dental_words.txt", f"words of {names[0]}", notes),
                 _words(words_b, "household_words.txt", f"words of {names[1]}", notes))
        both = sorted(set(lists[0]) & set(lists[1]))
        if both:
            notes.append(f"{len(both)} words are in both lists (kept in both groups): {', '.join(both[:10])}")
    texts, rows, reports = [], [], []
    if not use_sentences:  # each word in the carrier sentence
        head = carrier.index("{word}")
        for label, name, words in ((True, names[0], lists[0]), (False, names[1], lists[1])):
            rep = split_report(words, tokenizer)
            rep = rep[rep["leading_space"] == (head > 0 and carrier[head - 1] == " ")].assign(group=name)
            reports.append(rep)
            for w in words:
                text = carrier.replace("{word}", w)
                rows += _occurrences(tokenizer, text, [(head, head + len(w), w)], len(texts), label, name,
                                     word_pooling, max_length, counts)
                texts.append(text)
        reading = f"each word in the carrier sentence {carrier!r}, read at its {word_pooling} sub-token"
    else:
        for label, name, path, words in ((True, names[0], sentences_a, lists and lists[0]),
                                         (False, names[1], sentences_b, lists and lists[1])):
            missing = 0
            for sent in read_lines(path, f"sentences of {name}"):
                if words:
                    spans = [(m.start(), m.end(), m.group(0)) for w in words
                             for m in re.finditer(rf"\b{re.escape(w)}\b", sent, flags=re.IGNORECASE)]
                    if not spans:
                        missing += 1
                        continue
                else:
                    spans = None
                rows += _occurrences(tokenizer, sent, spans, len(texts), label, name, word_pooling, max_length,
                                     counts)
                texts.append(sent)
            if missing:
                notes.append(f"group {name}: {missing} sentences contain none of the listed words and are not used")
        reading = (f"each listed word in the sentences, read at its {word_pooling} sub-token" if lists
                   else "the final token of each sentence")
        if lists:
            df = pd.DataFrame(rows)
            multi = df[df["n_subtokens"] > 1]
            for name in names:
                m = multi[multi["group"] == name].drop_duplicates("word")
                reports.append(pd.DataFrame({"word": m["word"], "n_tokens": m["n_subtokens"], "tokens": m["pieces"],
                                             "leading_space": m["pieces"].map(lambda p: p[0].startswith(" ")),
                                             "group": name}))
    rows_df = _finish(rows, "word" if lists else "token").drop(columns=["pieces"], errors="ignore")
    rows_df, sub = _subsample(rows_df, max_per_group, seed)
    report = pd.concat(reports, ignore_index=True) if reports else None
    for name in names:
        if report is not None:
            note = _split_note(report[report["group"] == name], name, word_pooling)
            if note:
                notes.append(note)
    return SampleSet("category", texts, rows_df, "binary", tuple(names), f"category {names[0]} vs {names[1]}",
                     reading, word_pooling=word_pooling, max_length=max_length, notes=notes + sub,
                     split_report=report, units=CORPUS_UNITS if lists else ("paragraph",))


def _stem(path) -> str:
    return Path(path).stem if path is not None else "?"


def _occurrences(tokenizer, text, spans, text_index, label, group, word_pooling, max_length, counts) -> list[dict]:
    """Sample rows for word spans [(start, end, word)] of one text (None: its final token)."""
    ids, offsets, special = encode_text(tokenizer, text, max_length)
    if spans is None:
        p = _last_real(special)
        return [{"text": text_index, "positions": (p,), "position": p, "label": label, "group": group,
                 "n_subtokens": 1, "word": "", **_token_fields(tokenizer, ids, p, counts)}]
    out = []
    for start, end, word in spans:
        positions = span_positions(offsets, special, start, end)
        if not positions:  # cut off by truncation
            continue
        p = _read(positions, word_pooling)
        out.append({"text": text_index, "positions": positions if word_pooling == "mean" else (p,), "position": p,
                    "label": label, "group": group,
                    "word": word, "n_subtokens": len(positions),
                    "pieces": [tokenizer.decode([ids[q]]) for q in positions],
                    **_token_fields(tokenizer, ids, p, counts)})
    return out


# --------------------------------------------------------------------------- user labels
def _binary_or_continuous(values: pd.Series, column: str):
    """(label array, kind, (A, B) names) for a label column; raises for unusable columns."""
    v = values.dropna()
    if v.dtype == bool or set(pd.unique(v)) <= {0, 1, True, False}:
        return v.astype(bool), "binary", (column, f"not {column}")
    if pd.api.types.is_numeric_dtype(v):
        return v.astype(float), "continuous", None
    uniq = sorted(pd.unique(v).astype(str))
    if len(uniq) == 2:
        return v.astype(str) == uniq[1], "binary", (uniq[1], uniq[0])
    raise InputError(f"label column '{column}' has {len(uniq)} values ({', '.join(uniq[:6])}...); give a binary "
                     f"or numeric column, or COLUMN=VALUE (e.g. {column}={uniq[0]})")


def labels(tokenizer, label_column: str | None = None, table=None, docs=None, word_pooling: str = "last",
           max_docs=None, max_tokens=None, max_per_group=None, max_length: int = 128, counts=None,
           seed: int = 0, unit_columns=(), **_) -> SampleSet:
    """A user label: a column of the corpus's token table, or of a table (CSV/TSV/Parquet/JSONL) with `text`.

    `COLUMN=VALUE` makes a binary label (rows equal to VALUE are group A). A user table gives one sample
    per row, read at its `position` column if it has one (a token index into the model input), else at
    the final token; its rows are independent unless `unit_columns` (one or two columns of the table) name
    their units of replication. Corpus labels have the corpus units (word type x paragraph).
    """
    if not label_column:
        raise InputError("--contrast labels needs --label-column (a column of the token table or of --table)")
    _check_pooling(word_pooling)
    column, _, value = label_column.partition("=")
    counts = counts if counts is not None else corpus_counts(tokenizer)
    if table is None:
        available = LABEL_COLUMNS + ["log_freq"]
        if column not in available:
            raise InputError(f"unknown label column '{column}'; the token table has {', '.join(available)}")
        texts, tab = _corpus_table(tokenizer, docs, max_docs, max_tokens, max_length, counts, seed)
        if column in WORD_COLUMNS:
            samples = _word_samples(tab, word_pooling)
            reading = f"each spaCy word, read at its {word_pooling} sub-token"
        else:
            samples = tab[tab["char_len"] > 0].rename(columns={"doc": "text"}).copy()
            samples["positions"] = [(int(p),) for p in samples["position"]]
            reading = "every token with a visible character"
        reading += f" of {len(texts)} corpus paragraphs"
    else:
        texts, samples = _user_table(tokenizer, table, column, max_length, counts, tuple(unit_columns or ()))
        reading = f"one sample per row of {Path(table).name}, at its position column or final token"
    if value:
        lab, kind, groups = samples[column].astype(str) == value, "binary", (value, f"not {value}")
    else:
        lab, kind, groups = _binary_or_continuous(samples[column], column)
    samples = samples.loc[lab.index].copy()
    samples["label"] = lab
    samples["group"] = np.where(lab, groups[0], groups[1]) if kind == "binary" else ""
    type_column = "word" if table is None and column in WORD_COLUMNS else "token"
    rows = _finish(samples, type_column)
    rows, notes = _subsample(rows, max_per_group, seed) if kind == "binary" else (rows, [])
    units = CORPUS_UNITS if table is None else tuple(unit_columns or ())
    return SampleSet("labels", texts, rows, kind, groups, label_column, reading, word_pooling=word_pooling,
                     max_length=max_length, notes=notes, units=units)


def _user_table(tokenizer, path, column: str, max_length: int, counts, unit_columns: tuple = ()):
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix == ".jsonl":
            df = pd.read_json(path, lines=True)
        else:
            df = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".tab") else ",")
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read --table {path}: {str(err).splitlines()[0][:200]}") from None
    if "text" not in df.columns:
        raise InputError(f"--table {path} has no 'text' column (columns: {', '.join(map(str, df.columns))})")
    if column not in df.columns:
        raise InputError(f"unknown label column '{column}'; --table {path.name} has "
                         f"{', '.join(map(str, df.columns))}")
    for u in unit_columns:
        if u not in df.columns:
            raise InputError(f"unknown --unit-column '{u}'; --table {path.name} has {', '.join(map(str, df.columns))}")
        if u in SAMPLE_COLUMNS or u == column:
            raise InputError(f"--unit-column '{u}' is a name lamina uses for its own sample columns; rename it "
                             f"in the table (reserved: {', '.join(SAMPLE_COLUMNS)})")
    rows = []
    for i, r in enumerate(df.itertuples(index=False)):
        text = str(getattr(r, "text"))
        ids, _, special = encode_text(tokenizer, text, max_length)
        p = int(getattr(r, "position")) if "position" in df.columns else _last_real(special)
        if not 0 <= p < len(ids) or special[p]:
            raise InputError(f"--table row {i + 1}: position {p} is not a token of its text (0-{len(ids) - 1})")
        rows.append({"text": i, "positions": (p,), "position": p, column: getattr(r, column),
                     **{u: df[u].iat[i] for u in unit_columns}, **_token_fields(tokenizer, ids, p, counts)})
    return [str(t) for t in df["text"]], pd.DataFrame(rows)


# --------------------------------------------------------------------------- dispatch
BUILDERS = {"nouns-verbs": nouns_verbs, "proper-nouns": proper_nouns, "token-length": token_length,
            "negation": negation, "category": category, "labels": labels}


def build_contrast(name: str, tokenizer, **options) -> SampleSet:
    """The SampleSet of a named contrast (see the module docstring); unknown names raise InputError."""
    if name not in BUILDERS:
        raise InputError(f"unknown contrast '{name}'; choose one of {', '.join(CONTRASTS)}")
    options = {k: v for k, v in options.items() if v is not None}
    samples = BUILDERS[name](tokenizer, **options)
    if samples.rows.empty:
        raise InputError(f"contrast {name} found no samples; give more text (--max-tokens) or other inputs")
    return samples
