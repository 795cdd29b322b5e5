"""A contrast's samples read from an activation store instead of the model: `tuning.gather_activations`'s
result ({site: [n_samples, n_neurons]}, each sample's token positions pooled by mean) from stored tokens.

Each sample text is found among the store's documents by its token ids (the text, tokenized as
`gather_activations` tokenizes it, must be the start of a stored document: extract a store from the
contrast's texts, e.g. `corpus_texts(docs)` written as a .jsonl corpus). The values equal the model's when
the store's window holding each read token starts at the document's first token (`--context` at least the
texts' length), as `gather_activations` runs each text alone.
"""
from __future__ import annotations

import numpy as np
import torch

from lamina.analyses.sources import StoreSource
from lamina.data.windows import POSITION_BITS
from lamina.errors import InputError
from lamina.store.columns import check_sites, find_rows, gather


def stored_activations(store, samples, sites, tokenizer) -> dict[str, np.ndarray]:
    """{site: float32 [n_samples, n_neurons]} for a SampleSet, from a store holding its texts as documents."""
    names = [getattr(s, "name", s) for s in sites]
    check_sites(store, names)
    source = StoreSource(store, tokenizer)
    by_tokens = {}                                                # the documents' tokens -> document index
    for doc in source.by_doc:
        windows = [source.windows[i] for i in source.by_doc[doc]]
        ids = [t for w in windows for t in w.ids[w.first_counted:]]
        by_tokens.setdefault(tuple(ids[:samples.max_length]), doc)
    docs = []
    for text in samples.texts:
        ids = tokenizer(text, truncation=True, max_length=samples.max_length)["input_ids"]
        docs.append(by_tokens.get(tuple(ids), -1))
    rows = samples.rows
    missing = sorted({int(t) for t in rows["text"] if docs[int(t)] < 0})
    if missing:
        raise InputError(f"{len(missing)} of the contrast's texts are not documents of {store.folder} (first: "
                         f"{samples.texts[missing[0]][:60]!r}); extract a store from these texts first")
    owner, wanted = [], []
    for i, (text, positions) in enumerate(zip(rows["text"], rows["positions"])):
        for p in positions:
            owner.append(i)
            wanted.append((docs[int(text)] << POSITION_BITS) | int(p))
    found = find_rows(store, np.asarray(wanted))
    if (found < 0).any():
        raise InputError(f"{int((found < 0).sum())} read tokens are not stored in {store.folder} "
                         "(left out by --skip-first or --max-tokens); extract without them")
    owner_t = torch.as_tensor(owner)
    counts = torch.bincount(owner_t, minlength=len(rows)).float()[:, None]
    out = {}
    for name in names:
        values = gather(store, name, found).float()                                   # [m, width]
        pooled = torch.zeros(len(rows), values.shape[1]).index_add_(0, owner_t, values) / counts
        out[name] = pooled.numpy()
    return out
