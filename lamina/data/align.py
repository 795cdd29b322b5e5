"""Align words (character spans) to model sub-tokens (character offsets), and pool the tokens a sample reads."""
from __future__ import annotations

import numpy as np
import torch


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


def pool_positions(values: torch.Tensor, owner: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Each sample's read tokens pooled by mean: the one pooling of every activation source.

    values [m, width] float32, one row per read token; owner [m] int64, the sample (0..n_samples-1) each row
    belongs to -> [n_samples, width]. A sample read at one token keeps its value exactly; which tokens a
    sample reads (a word's last, first or every sub-token: `--word-pooling`) is chosen by its contrast
    builder, so last / first / mean are all this mean. A sample with no read token gets NaN.
    """
    counts = torch.bincount(owner, minlength=n_samples).float()[:, None]        # [n_samples, 1]
    return torch.zeros(n_samples, values.shape[1]).index_add_(0, owner, values) / counts
