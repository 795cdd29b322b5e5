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

One module per family: `sample_set` (the SampleSet and the row helpers), `corpus_words` (nouns-verbs,
proper-nouns, token-length), `negation_pairs`, `word_lists` (category), `label_columns` (labels); here the
registry of names (`build_contrast`).
"""
from __future__ import annotations

from lamina.analyses.tuning.contrasts.corpus_words import (
    corpus_counts,
    corpus_paragraphs,
    corpus_texts,
    nouns_verbs,
    part_of_speech,
    proper_nouns,
    token_length,
)
from lamina.analyses.tuning.contrasts.label_columns import labels
from lamina.analyses.tuning.contrasts.negation_pairs import NEGATION_READ, negation, read_pairs
from lamina.analyses.tuning.contrasts.sample_set import (
    CORPUS_UNITS,
    SAMPLE_COLUMNS,
    WORD_COLUMNS,
    WORD_POOLING,
    SampleSet,
    add_units,
    builtin_file,
    encode_text,
    normalize_type,
    read_lines,
    span_positions,
)
from lamina.analyses.tuning.contrasts.word_lists import CARRIER, category
from lamina.errors import InputError

__all__ = ["SampleSet", "build_contrast", "CONTRASTS", "BUILDERS", "nouns_verbs", "proper_nouns", "part_of_speech",
           "token_length", "negation", "read_pairs", "category", "labels", "corpus_texts", "corpus_paragraphs",
           "corpus_counts", "builtin_file", "read_lines", "encode_text", "span_positions", "normalize_type",
           "add_units", "CARRIER", "NEGATION_READ", "WORD_POOLING", "WORD_COLUMNS", "SAMPLE_COLUMNS", "CORPUS_UNITS"]
CONTRASTS = ("nouns-verbs", "negation", "proper-nouns", "token-length", "category", "labels")
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
