"""Documents -> token windows -> batches, with the first-token policy and padding masks.

Each document is tokenized on its own and cut into windows of `context` tokens every `stride` tokens.
With stride < context, windows overlap and a token is counted only in the first window that holds it
(`count` mask), so statistics never see a token twice. `skip_first=True` leaves position 0 of every
window out of the statistics (the first token of a context is an attention sink with outsized
activations); by default it is kept. `pack=True` joins documents, separated by the EOS token, into one
stream cut into full windows: no padding, but windows then cross document boundaries.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lamina import validate
from lamina.data.corpus import Document
from lamina.errors import InputError

POSITION_BITS = 24  # row id = doc << 24 | position: a token's global id in constant memory (`row_id`)


@dataclass(frozen=True)
class Window:
    doc: int          # document index (for packed windows: the document of the first token)
    start: int        # first token's position in the document (or in the packed stream)
    ids: list[int]    # token ids
    first_counted: int  # index of the first token this window counts (overlap with the previous one)


@dataclass
class Batch:
    input_ids: torch.Tensor       # [b, t]
    attention_mask: torch.Tensor  # [b, t] 1 = real token
    count: torch.Tensor           # [b, t] bool: token enters statistics
    row_ids: torch.Tensor         # [b, t] int64: row_id(doc, position in doc), -1 for padding
    windows: list[Window]

    @property
    def n_tokens(self) -> int:
        return int(self.count.sum())


def tokenize_documents(tokenizer, docs: list[Document], max_tokens: int | None = None,
                       chunk: int = 16) -> list[list[int]]:
    """Token ids of each document, with the tokenizer's own special tokens (BOS where it adds one).

    With `max_tokens`, tokenizing stops at the first document that brings the total to `max_tokens`: a
    16k-token profile of a large corpus never tokenizes the rest of it."""
    token_ids, total = [], 0
    for i in range(0, len(docs), chunk):
        encoded = tokenizer([d.text for d in docs[i:i + chunk]], add_special_tokens=True)["input_ids"]
        for ids in encoded:
            if max_tokens and total >= max_tokens:
                return token_ids
            token_ids.append(ids)
            total += len(ids)
    return token_ids


def make_windows(token_ids: list[list[int]], context: int, stride: int | None = None, pack: bool = False,
                 separator: int | None = None) -> list[Window]:
    """Cut tokenized documents into windows (see module docstring)."""
    context = validate.integer("context", context, low=2)
    stride = context if stride is None else validate.integer("stride", stride, low=1, high=context)
    if pack:
        stream = []
        for ids in token_ids:
            stream += ids + ([separator] if separator is not None else [])
        token_ids = [stream]
    windows = []
    for doc, ids in enumerate(token_ids):
        start = 0
        while ids:
            windows.append(Window(doc, start, ids[start:start + context], 0 if start == 0 else context - stride))
            if start + context >= len(ids):
                break
            start += stride
    return windows


def pad_id(tokenizer) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its end-of-text token, else 0.

    Padding positions are masked (attention mask 0, NaN in captures), so the id only has to be a valid token."""
    if tokenizer is None:
        return 0
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def batches(windows: list[Window], batch_size: int, pad_id: int, skip_first: bool = False) -> Iterator[Batch]:
    """Group windows into right-padded batches with count masks and global row ids."""
    for i in range(0, len(windows), batch_size):
        group = windows[i:i + batch_size]
        width = max(len(w.ids) for w in group)
        input_ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        count = torch.zeros((len(group), width), dtype=torch.bool)
        rows = torch.full((len(group), width), -1, dtype=torch.long)
        for b, w in enumerate(group):
            n = len(w.ids)
            input_ids[b, :n] = torch.tensor(w.ids)
            mask[b, :n] = 1
            count[b, max(w.first_counted, 1 if skip_first else 0):n] = True
            rows[b, :n] = row_id(w.doc, w.start + torch.arange(n))
        yield Batch(input_ids, mask, count, rows, group)


def row_id(doc, position):
    """The global row id of token `position` of document `doc`; elementwise on integer arrays and tensors too."""
    return (doc << POSITION_BITS) | position


def split_row_id(row):
    """(document index, position in document) of a global row id; elementwise on integer arrays too."""
    return row >> POSITION_BITS, row & ((1 << POSITION_BITS) - 1)


def corpus_windows(lm, docs: list[Document], context: int = 128, stride: int | None = None, pack: bool = False,
                   max_tokens: int | None = None) -> list[Window]:
    """Tokenize a corpus and cut it into windows for `lm`, keeping at most `max_tokens` counted tokens."""
    limit = lm.anatomy.context_length
    context, max_tokens = validate.integer("context", context, low=2), validate.limit("max_tokens", max_tokens)
    if limit and context > limit:
        raise InputError(f"context {context} is longer than the model's context of {limit} tokens")
    token_ids = tokenize_documents(lm.tokenizer, docs, max_tokens)
    windows = make_windows(token_ids, context, stride, pack, separator=lm.tokenizer.eos_token_id)
    if max_tokens:
        kept, total = [], 0
        for w in windows:
            if total >= max_tokens:
                break
            kept.append(w)
            total += len(w.ids) - w.first_counted
        windows = kept
    if not windows:
        raise InputError("the corpus gives no tokens")
    return windows


def read_counts(windows: list[Window], n_corpus_docs: int | None = None) -> dict:
    """What `windows` read (not the corpus's size): distinct documents, windows, counted tokens; and the
    corpus's document count when given. Packed windows count the document of each window's first token."""
    counts = {"documents_read": len({w.doc for w in windows}), "windows": len(windows),
              "tokens_read": sum(len(w.ids) - w.first_counted for w in windows)}
    if n_corpus_docs is not None:
        counts["documents_in_corpus"] = n_corpus_docs
    return counts
