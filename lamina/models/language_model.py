"""A loaded model: the transformers model, its tokenizer and its anatomy, with tokenize and capture."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from lamina.anatomy import Anatomy
from lamina.anatomy.check import CHECK_TEXT, check_identities, check_sites
from lamina.capture import Activations, run_capture
from lamina.errors import InputError, SiteError, UnsupportedArchitectureError
from lamina.sites import Site, parse_neuron, parse_sites


def projection_weight(module: torch.nn.Module) -> torch.Tensor:
    """A projection's weight as a view [out, in]: nn.Linear stores [out, in], GPT-2's Conv1D [in, out]."""
    if isinstance(module, torch.nn.Linear):
        return module.weight.data
    if type(module).__name__ == "Conv1D":
        return module.weight.data.T
    raise UnsupportedArchitectureError(f"cannot read the weight layout of {type(module).__name__}")


def check_neuron_index(site: Site, index: int, width: int) -> None:
    """SiteError unless 0 <= index < width, the number of neurons of `site`."""
    if not 0 <= index < width:
        raise SiteError(f"{site.name}:{index}: neuron index out of range; {site.name} has neurons 0-{width - 1}")


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

    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The model's inputs on its device: input_ids [batch, tokens] and attention_mask (ones if not given).

        Every forward pass over token ids gets its inputs from here, so a model on a GPU gets them there.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return {"input_ids": input_ids.to(self.device), "attention_mask": attention_mask.to(self.device)}

    def site_widths(self, sites) -> dict[str, int]:
        """Values per token of each site (q/k/v: heads x d_head), measured on a one-token forward pass."""
        acts = self.capture(self.inputs(torch.tensor([[0]])), sites)
        return {name: int(value[0, 0].numel()) for name, value in acts.items()}

    @property
    def vocab_size(self) -> int:
        """Rows of W_E / W_U that are real tokens (some models pad the embedding matrix past the tokenizer)."""
        return min(len(self.tokenizer), self.model.get_input_embeddings().weight.shape[0])

    def embedding_matrix(self) -> torch.Tensor:
        """W_E [vocab, d_model]: the token embedding matrix, detached float32."""
        return self.model.get_input_embeddings().weight.detach().float()[: self.vocab_size]

    def unembedding_matrix(self) -> torch.Tensor:
        """W_U [vocab, d_model]: the unembedding's weight, detached float32 (a bias does not change a direction)."""
        unembed = self.model.get_submodule(self.anatomy.family.unembed)
        return projection_weight(unembed).detach().float()[: self.vocab_size]

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
        return self.inputs(batch["input_ids"], batch["attention_mask"])

    def capture(self, texts, sites, stop_early: bool = True, truncate: bool = False) -> Activations:
        """Activations at `sites` for a list of texts (or a dict with input_ids and optionally attention_mask)."""
        if isinstance(texts, dict):
            batch = self.inputs(texts["input_ids"], texts.get("attention_mask"))
        else:
            batch = self.tokenize(texts, truncate=truncate)
        parsed = sites if sites and isinstance(sites[0], Site) else self.sites(sites)
        return run_capture(self.model, self.anatomy, batch["input_ids"], batch["attention_mask"], parsed, stop_early)

    def check_anatomy(self, text: str = CHECK_TEXT) -> dict[str, float]:
        """Prove the anatomy's residual identities on one short forward pass; AnatomyCheckError if one fails."""
        return check_identities(self.anatomy, self.model, self.capture([text], check_sites(self.anatomy)))

    def __repr__(self) -> str:
        a = self.anatomy
        return (
            f"LanguageModel({self.spec!r}: {a.model_type}, {a.n_layers} layers, d_model {a.d_model}, "
            f"{a.n_heads} heads ({a.n_kv_heads} kv), family {a.family.name})"
        )
