"""A loaded model: the transformers model, its tokenizer and its anatomy, with tokenize and capture."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from lamina.anatomy import Anatomy
from lamina.anatomy.check import CHECK_TEXT, check_identities, check_sites
from lamina.capture import Activations, Capture, run_capture
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

    def inputs(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, *,
               inputs_embeds: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The model's inputs on its device: input_ids [batch, tokens] (or inputs_embeds [batch, tokens, d_model],
        the soft prompts of maximize) and attention_mask [batch, tokens] (ones if not given).

        Every forward pass gets its inputs from here, so a model on a GPU gets them there (tests/test_device.py).
        A tensor already on the device is returned as it is, so gradients flow through embeddings.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise TypeError("give input_ids or inputs_embeds, not both or neither")
        name, x = ("input_ids", input_ids) if inputs_embeds is None else ("inputs_embeds", inputs_embeds)
        if attention_mask is None:
            attention_mask = torch.ones(x.shape[:2], dtype=torch.long)
        return {name: x.to(self.device), "attention_mask": attention_mask.to(self.device)}

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
        """Right-padded input_ids and attention_mask [batch, tokens] on the model's device (`encode`, moved)."""
        enc = self.encode(texts, truncate=truncate, max_length=max_length)
        return self.inputs(enc["input_ids"], enc["attention_mask"])

    def encode(self, texts, truncate: bool = False, max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Right-padded input_ids and attention_mask [batch, tokens] on the CPU, for reading token ids on the host
        (alignments, token strings) without a device round trip; errors on empty or too-long text."""
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
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def capture(self, texts, sites, stop_early: bool = True, truncate: bool = False) -> Activations:
        """Activations at `sites` for a list of texts (or a dict with input_ids and optionally attention_mask)."""
        batch = self.batch(texts, truncate)
        parsed = sites if sites and isinstance(sites[0], Site) else self.sites(sites)
        return run_capture(self.model, self.anatomy, batch["input_ids"], batch["attention_mask"], parsed, stop_early)

    def batch(self, texts, truncate: bool = False) -> dict[str, torch.Tensor]:
        """Inputs on the model's device from a list of texts, or from a dict of input_ids (checked against the
        vocabulary) and optionally an attention_mask."""
        if isinstance(texts, dict):
            checked = self.check_ids(texts)
            return self.inputs(checked["input_ids"], checked.get("attention_mask"))
        return self.tokenize(texts, truncate=truncate)

    def check_anatomy(self, text: str = CHECK_TEXT) -> dict[str, float]:
        """Prove the anatomy's residual identities on one short forward pass; AnatomyCheckError if one fails."""
        return check_identities(self.anatomy, self.model, self.capture([text], check_sites(self.anatomy)))

    def check_ids(self, batch: dict) -> dict:
        """A dict of input_ids [batch, tokens] (and an optional attention_mask) checked against the vocabulary."""
        ids = batch.get("input_ids")
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype.is_floating_point or ids.numel() == 0:
            raise InputError("input_ids must be a non-empty integer tensor [batch, tokens]")
        vocab = self.model.get_input_embeddings().num_embeddings
        low, high = (0, 0) if ids.is_meta else (int(ids.min()), int(ids.max()))  # a meta tensor has no values
        if low < 0 or high >= vocab:
            raise InputError(f"token id {low if low < 0 else high} is outside the vocabulary of {self.spec} "
                             f"(0..{vocab - 1})")
        mask = batch.get("attention_mask")
        if mask is not None and tuple(mask.shape) != tuple(ids.shape):
            raise InputError(f"attention_mask has shape {tuple(mask.shape)}, input_ids {tuple(ids.shape)}")
        return batch

    def edit(self, *edits) -> Capture:
        """`with lm.edit(e1, e2): lm.model(...)`: the edits hold for every forward pass inside the block."""
        from lamina.edits import bind_all

        return Capture(self.model, self.anatomy, [], stop_early=False, edits=bind_all(self, edits))

    def run(self, texts, edits=(), sites=("logits",), stop_early: bool = True, truncate: bool = False) -> Activations:
        """One forward pass under `edits`, capturing `sites` (default: the logits) in the same pass."""
        from lamina.edits import bind_all, check_positions

        batch = self.batch(texts, truncate)
        bound = bind_all(self, edits)
        check_positions(bound, batch["attention_mask"].sum(1).tolist())
        parsed = sites if sites and isinstance(sites[0], Site) else self.sites(list(sites))
        return run_capture(self.model, self.anatomy, batch["input_ids"], batch["attention_mask"], parsed, stop_early,
                           edits=bound)

    def __repr__(self) -> str:
        a = self.anatomy
        return (
            f"LanguageModel({self.spec!r}: {a.model_type}, {a.n_layers} layers, d_model {a.d_model}, "
            f"{a.n_heads} heads ({a.n_kv_heads} kv), family {a.family.name})"
        )
