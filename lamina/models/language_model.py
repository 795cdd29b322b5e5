"""A loaded model: the transformers model, its tokenizer and its anatomy, with tokenize and capture."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from lamina.anatomy import Anatomy
from lamina.capture import Activations, run_capture
from lamina.errors import InputError
from lamina.sites import Site, parse_neuron, parse_sites


@dataclass
class LanguageModel:
    model: torch.nn.Module
    tokenizer: object
    anatomy: Anatomy
    spec: str
    seed: int | None = None
    info: dict = field(default_factory=dict)  # how it was loaded: source, load seconds, dtype

    @property
    def n_layers(self) -> int:
        return self.anatomy.n_layers

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def sites(self, names) -> list[Site]:
        """Parse site names against this model (a kind without layer means every layer)."""
        return parse_sites(names, self.n_layers, self.anatomy.kinds)

    def neuron(self, text: str) -> tuple[Site, int]:
        return parse_neuron(text, self.n_layers, self.anatomy.kinds)

    def tokenize(self, texts, truncate: bool = False, max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Right-padded input_ids and attention_mask [batch, tokens]; errors on empty or too-long text."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)):
            raise InputError(f"texts must be a string or a list of strings, not {type(texts).__name__}")
        wrong = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if wrong:
            raise InputError(f"texts must be strings; item {wrong[0]} is {texts[wrong[0]]!r}")
        if not texts or any(not t.strip() for t in texts):
            raise InputError("empty text: give at least one non-blank text")
        limit = max_length or self.anatomy.context_length
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=True)
        n = batch["input_ids"].shape[1]
        if limit and n > limit:
            if not truncate:
                raise InputError(
                    f"text is {n} tokens, longer than the model's context of {limit}; "
                    "shorten it or pass --truncate"
                )
            warnings.warn(f"text truncated from {n} to {limit} tokens", stacklevel=2)
            batch = {k: v[:, :limit] for k, v in batch.items()}
        return {"input_ids": batch["input_ids"].to(self.device), "attention_mask": batch["attention_mask"].to(self.device)}

    def capture(self, texts, sites, stop_early: bool = True, truncate: bool = False) -> Activations:
        """Activations at `sites` for a list of texts (or a dict with input_ids/attention_mask)."""
        batch = self.check_ids(texts) if isinstance(texts, dict) else self.tokenize(texts, truncate=truncate)
        parsed = sites if sites and isinstance(sites[0], Site) else self.sites(sites)
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(batch["input_ids"])
        return run_capture(self.model, self.anatomy, batch["input_ids"], mask, parsed, stop_early)

    def check_ids(self, batch: dict) -> dict:
        """A dict of input_ids [batch, tokens] (and an optional attention_mask) checked against the vocabulary."""
        ids = batch.get("input_ids")
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype.is_floating_point or ids.numel() == 0:
            raise InputError("input_ids must be a non-empty integer tensor [batch, tokens]")
        vocab = self.model.get_input_embeddings().num_embeddings
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab:
            raise InputError(f"token id {low if low < 0 else high} is outside the vocabulary of {self.spec} "
                             f"(0..{vocab - 1})")
        mask = batch.get("attention_mask")
        if mask is not None and tuple(mask.shape) != tuple(ids.shape):
            raise InputError(f"attention_mask has shape {tuple(mask.shape)}, input_ids {tuple(ids.shape)}")
        return batch

    def __repr__(self) -> str:
        a = self.anatomy
        return (
            f"LanguageModel({self.spec!r}: {a.model_type}, {a.n_layers} layers, d_model {a.d_model}, "
            f"{a.n_heads} heads ({a.n_kv_heads} kv), family {a.family.name})"
        )
