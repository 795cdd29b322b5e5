"""Every forward pass gets its inputs on the model's device, through `LanguageModel.inputs`.

This machine has no second device, so the model here *reports* the meta device while its weights stay on
the CPU. `lm.inputs` (the one place that moves inputs) really moves them to meta, and a forward pre-hook on
the model fails on any tensor input that is not on meta; it then hands the forward the CPU values those meta
tensors stand for, so each pipeline runs to its end and every later forward pass is checked too. A call site
that built its own input dict from the CPU tensors the tokenizer and the windows make would reach the model
with CPU tensors and fail here, as it would fail on a GPU. What runs after the forward pass (statistics on
activations that live on a GPU) is not covered: benchmarks/gpu_main_job.py runs that on a real GPU.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
import torch

from lamina.analyses.profile.laminar import profile
from lamina.analyses.neurons.top_examples import top_examples
from lamina.analyses.verify import verify
from lamina.capture import run_capture
from lamina.data.corpus import Document
from lamina.data.windows import batches, corpus_windows
from lamina.extract import extract
from lamina.models.language_model import LanguageModel

TEXTS = ["The cat sat on the mat because it was tired.", "She did not go to Paris last summer.",
         "Numbers like 42 and 1999 appear in text.", "A short one."]
META, CPU = torch.device("meta"), torch.device("cpu")


@dataclass
class ReportsMeta(LanguageModel):
    """A LanguageModel whose model says it lives on meta; the weights stay on the CPU."""

    def __post_init__(self):
        self.on = META
        self.real: dict[int, torch.Tensor] = {}   # id of a meta input -> the CPU tensor it stands for
        self.handed: set[int] = set()              # ids of inputs already checked and swapped
        self.checked = 0                           # forward passes whose inputs were all on meta
        self.alive: list[torch.Tensor] = []        # every tensor whose id is a key above, kept alive: a freed
                                                   # tensor's id is reused, and would pass for a checked one

    @property
    def device(self) -> torch.device:
        return self.on

    def inputs(self, input_ids, attention_mask=None):
        moved = super().inputs(input_ids, attention_mask)   # the real method: to meta
        if all(id(t) in self.real for t in moved.values()):
            return moved                                      # moved already (tokenize, then capture)
        self.on = CPU
        try:
            values = super().inputs(input_ids, attention_mask)
        finally:
            self.on = META
        self.real.update({id(moved[k]): values[k].clone() for k in moved})  # a copy: the swap must not touch the caller's
        self.alive.extend(moved.values())
        return moved

    def check(self, module, args, kwargs):
        """Forward pre-hook: every tensor input on meta; then each becomes, in place, the CPU values it stands for."""
        tensors = [(name, t) for name, t in [*enumerate(args), *kwargs.items()] if torch.is_tensor(t)]
        if tensors and all(id(t) in self.handed for _, t in tensors):
            return  # the base model called by the causal-LM wrapper, with inputs already checked
        for name, t in tensors:
            assert t.device == META, f"input {name} reached the model on {t.device}, not on the model's device"
        for _, t in tensors:
            torch.utils.swap_tensors(t, self.real.pop(id(t)))  # the same object, now on the CPU with real values
            self.handed.add(id(t))
        self.checked += 1

    @contextlib.contextmanager
    def checking(self):
        """The input check on the model (and its base model) while the block runs."""
        handles = [m.register_forward_pre_hook(self.check, with_kwargs=True) for m in (self.model, self.model.base_model)]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()


@pytest.fixture
def pair(models):
    """(the session's random llama, the same model wrapped to report meta)."""
    lm = models("llama")
    return lm, ReportsMeta(lm.model, lm.tokenizer, lm.anatomy, lm.spec)


def _docs():
    return [Document(str(i), t) for i, t in enumerate(TEXTS)]


def test_inputs_are_moved_and_masked(pair):
    _, meta = pair
    ids = torch.tensor([[5, 6, 7]])
    moved = meta.inputs(ids)
    assert moved["input_ids"].device == META and moved["attention_mask"].device == META
    assert torch.equal(meta.real[id(moved["attention_mask"])], torch.ones(1, 3, dtype=torch.long))


def test_a_cpu_input_is_caught(pair):
    """The check can fail: inputs that skip `lm.inputs` reach the model on the CPU."""
    lm, meta = pair
    batch = lm.tokenizer(TEXTS[:2], return_tensors="pt", padding=True)  # CPU tensors, not moved
    with meta.checking(), pytest.raises(AssertionError, match="reached the model on cpu"):
        run_capture(meta.model, meta.anatomy, batch["input_ids"], batch["attention_mask"], meta.sites(["resid_post.1"]))


def test_capture_and_verify_move_their_inputs(pair):
    lm, meta = pair
    sites = ["resid_post.1", "mlp_post.2", "q.3", "logits"]
    for source in (TEXTS, {"input_ids": lm.tokenize(TEXTS)["input_ids"]}):  # texts, and a dict of CPU tensors
        want = lm.capture(source, sites)
        with meta.checking():
            got = meta.capture(source, sites)
        assert meta.checked == 1 + (source is not TEXTS)
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, equal_nan=True)
    with meta.checking():
        assert verify(meta)["ok"]
    assert meta.checked == 3


def test_extract_and_profile_move_every_batch(pair, tmp_path):
    lm, meta = pair
    docs, context, batch_size = _docs(), 8, 3
    n_batches = len(list(batches(corpus_windows(lm, docs, context), batch_size, lm.tokenizer.pad_token_id)))
    assert n_batches >= 2

    with meta.checking():
        store = extract(meta, docs, ["resid_post.1", "mlp_post.2"], tmp_path / "meta", context=context,
                        batch_size=batch_size, dtype="float32", progress=False)
    assert meta.checked == 1 + n_batches  # the one-token width probe, then every batch
    reference = extract(lm, docs, ["resid_post.1", "mlp_post.2"], tmp_path / "cpu", context=context,
                        batch_size=batch_size, dtype="float32", progress=False)
    for site in ("resid_post.1", "mlp_post.2"):
        torch.testing.assert_close(store.read(site), reference.read(site), rtol=0, atol=0)

    before = meta.checked
    with meta.checking():
        got = profile(meta, docs, "mlp_out", context=context, batch_size=batch_size, progress=False)
    assert meta.checked - before == n_batches
    want = profile(lm, docs, "mlp_out", context=context, batch_size=batch_size, progress=False)
    assert got.table.drop(columns="massive_dims").equals(want.table.drop(columns="massive_dims"))

    before = meta.checked
    with meta.checking():
        top_examples(meta, ["mlp_post.2:5"], docs, k=2, context=context, batch_size=batch_size, progress=False)
    assert meta.checked - before > 1 + n_batches  # width probe, the stream, then the example windows
