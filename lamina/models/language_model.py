"""A loaded model: the transformers model, its tokenizer and its anatomy, with tokenize and capture."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from lamina.anatomy import Anatomy
from lamina.capture import Activations, Capture, run_capture
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
        batch = texts if isinstance(texts, dict) else self.tokenize(texts, truncate=truncate)
        parsed = sites if sites and isinstance(sites[0], Site) else self.sites(sites)
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(batch["input_ids"])
        return run_capture(self.model, self.anatomy, batch["input_ids"], mask, parsed, stop_early)

    def edit(self, *edits) -> Capture:
        """`with lm.edit(e1, e2): lm.model(...)`: the edits hold for every forward pass inside the block."""
        from lamina.edits import bind_all

        return Capture(self.model, self.anatomy, [], stop_early=False, edits=bind_all(self, edits))

    def run(self, texts, edits=(), sites=("logits",), stop_early: bool = True, truncate: bool = False) -> Activations:
        """One forward pass under `edits`, capturing `sites` (default: the logits) in the same pass."""
        from lamina.edits import bind_all, check_positions

        batch = texts if isinstance(texts, dict) else self.tokenize(texts, truncate=truncate)
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(batch["input_ids"])
        bound = bind_all(self, edits)
        check_positions(bound, mask.sum(1).tolist())
        parsed = sites if sites and isinstance(sites[0], Site) else self.sites(list(sites))
        return run_capture(self.model, self.anatomy, batch["input_ids"], mask, parsed, stop_early, edits=bound)

    def __repr__(self) -> str:
        a = self.anatomy
        return (
            f"LanguageModel({self.spec!r}: {a.model_type}, {a.n_layers} layers, d_model {a.d_model}, "
            f"{a.n_heads} heads ({a.n_kv_heads} kv), family {a.family.name})"
        )
