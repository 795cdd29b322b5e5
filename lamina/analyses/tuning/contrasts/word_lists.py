"""The category contrast: two word lists in a carrier sentence, or two sentence files (at each listed word, or
the final token)."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from lamina.analyses.tuning.contrasts.corpus_words import corpus_counts
from lamina.analyses.tuning.contrasts.sample_set import (
    CORPUS_UNITS,
    SampleSet,
    builtin_file,
    check_pooling,
    encode_text,
    finish_rows,
    last_real,
    read_lines,
    read_position,
    span_positions,
    subsample,
    token_fields,
)
from lamina.data.labels import split_report
from lamina.errors import InputError

CARRIER = "The next word is {word}."


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
    check_pooling(word_pooling)
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
    rows_df = finish_rows(rows, "word" if lists else "token").drop(columns=["pieces"], errors="ignore")
    rows_df, sub = subsample(rows_df, max_per_group, seed)
    report = pd.concat(reports, ignore_index=True) if reports else None
    for name in names:
        if report is not None:
            note = _split_note(report[report["group"] == name], name, word_pooling)
            if note:
                notes.append(note)
    return SampleSet("category", texts, rows_df, "binary", tuple(names), f"category {names[0]} vs {names[1]}",
                     reading, word_pooling=word_pooling, max_length=max_length, notes=notes + sub,
                     split_report=report, units=CORPUS_UNITS if lists else ("paragraph",))


def second_category(tokenizer, words_c, words_b, **options) -> SampleSet:
    """Category C vs the same controls B (`--words-c`): the specificity check of a category run.

    A category run's fraction of tuned neurons mostly measures that two coherent word lists differ; C scored
    against the same B, and the overlap of the two significant sets, says how much of it is specific to A."""
    if words_b is None:
        raise InputError("--words-c is scored against the same controls as --words-a: give --words-a and --words-b")
    options = {k: v for k, v in options.items() if k not in ("words_a", "sentences_a", "sentences_b", "names")}
    return category(tokenizer, words_a=words_c, words_b=words_b, **options)


def _stem(path) -> str:
    return Path(path).stem if path is not None else "?"


def _occurrences(tokenizer, text, spans, text_index, label, group, word_pooling, max_length, counts) -> list[dict]:
    """Sample rows for word spans [(start, end, word)] of one text (None: its final token)."""
    ids, offsets, special = encode_text(tokenizer, text, max_length)
    if spans is None:
        p = last_real(special)
        return [{"text": text_index, "positions": (p,), "position": p, "label": label, "group": group,
                 "n_subtokens": 1, "word": "", **token_fields(tokenizer, ids, p, counts)}]
    out = []
    for start, end, word in spans:
        positions = span_positions(offsets, special, start, end)
        if not positions:  # cut off by truncation
            continue
        p = read_position(positions, word_pooling)
        out.append({"text": text_index, "positions": positions if word_pooling == "mean" else (p,), "position": p,
                    "label": label, "group": group,
                    "word": word, "n_subtokens": len(positions),
                    "pieces": [tokenizer.decode([ids[q]]) for q in positions],
                    **token_fields(tokenizer, ids, p, counts)})
    return out
