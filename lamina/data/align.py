"""Align words (character spans) to model sub-tokens (character offsets) and pool token values per word."""
from __future__ import annotations

import numpy as np


def word_spans(offsets, word_char_spans) -> np.ndarray:
    """Per token, the index of the word its characters overlap most (-1 if none).

    `offsets` and `word_char_spans` are [start, end) character pairs. Word spans must not contain
    whitespace (give whitespace-only words an empty span), so a leading-space token such as " cat"
    overlaps only through its non-space characters; whitespace-only and special (0, 0) tokens get -1.
    A token straddling two words (GPT-2 " didn" vs spaCy "did" + "n't") goes to the word it overlaps
    most, ties to the earlier word.
    """
    tok = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    words = np.asarray(word_char_spans, dtype=np.int64).reshape(-1, 2)
    if len(tok) == 0 or len(words) == 0:
        return np.full(len(tok), -1, dtype=np.int64)
    lo = np.maximum(tok[:, None, 0], words[None, :, 0])
    hi = np.minimum(tok[:, None, 1], words[None, :, 1])
    overlap = np.clip(hi - lo, 0, None)  # [n_tokens, n_words]
    best = overlap.argmax(axis=1)
    return np.where(overlap[np.arange(len(tok)), best] > 0, best, -1)


def pool_words(token_values, token_word_index, how: str = "last", n_words: int | None = None):
    """Pool token rows per word: (word_values [n_words, ...], token index used per word).

    `how` is 'last', 'first' or 'mean' (for 'mean' the index returned is the word's last sub-token).
    Works on numpy arrays and torch tensors (pooled along axis 0). Words without any token
    (e.g. cut off by truncation) get NaN rows and index -1; `n_words` defaults to max index + 1.
    """
    if how not in ("last", "first", "mean"):
        raise ValueError(f"how must be 'last', 'first' or 'mean', not {how!r}")
    idx = np.asarray(token_word_index, dtype=np.int64)
    if n_words is None:
        n_words = int(idx.max()) + 1 if idx.size else 0
    pos, valid = np.arange(len(idx)), idx >= 0
    first = np.full(n_words, len(idx), dtype=np.int64)
    np.minimum.at(first, idx[valid], pos[valid])
    last = np.full(n_words, -1, dtype=np.int64)
    np.maximum.at(last, idx[valid], pos[valid])
    missing = last < 0
    used = np.where(missing, -1, first if how == "first" else last)

    is_torch = type(token_values).__module__.startswith("torch")
    if is_torch:
        import torch

        vals = token_values if token_values.is_floating_point() else token_values.float()
        if how == "mean":
            out = vals.new_zeros((n_words, *vals.shape[1:]))
            out.index_add_(0, torch.as_tensor(idx[valid], device=vals.device), vals[torch.as_tensor(valid)])
            counts = torch.as_tensor(np.bincount(idx[valid], minlength=n_words), device=vals.device)
            out = out / counts.clamp(min=1).to(out.dtype).reshape(-1, *[1] * (out.ndim - 1))
        else:
            out = vals[torch.as_tensor(np.clip(used, 0, None), device=vals.device)].clone()
        out[torch.as_tensor(missing, device=vals.device)] = float("nan")
    else:
        vals = np.asarray(token_values)
        vals = vals if np.issubdtype(vals.dtype, np.floating) else vals.astype(np.float64)
        if how == "mean":
            out = np.zeros((n_words, *vals.shape[1:]), dtype=vals.dtype)
            np.add.at(out, idx[valid], vals[valid])
            counts = np.bincount(idx[valid], minlength=n_words)
            out /= np.maximum(counts, 1).reshape(-1, *[1] * (out.ndim - 1))
        else:
            out = vals[np.clip(used, 0, None)].copy() if len(vals) else np.zeros((n_words, *vals.shape[1:]))
        out[missing] = np.nan
    return out, used
