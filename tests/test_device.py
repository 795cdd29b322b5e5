"""Every forward pass gets its inputs on the model's device, through `LanguageModel.inputs`.

This machine has no second device, so the model here *reports* the meta device while its weights stay on
the CPU. `lm.inputs` (the one place that moves inputs) really moves them to meta, and a forward pre-hook on
the model fails on any tensor input that is not on meta; it then hands the forward the CPU values those meta
tensors stand for, so each pipeline runs to its end and every later forward pass is checked too. A call site
that built its own input dict from the CPU tensors the tokenizer and the windows make would reach the model
with CPU tensors and fail here, as it would fail on a GPU. Soft prompts (maximize's inputs_embeds) go through
`lm.inputs` too, and keep their gradient through the swap. A moved batch may serve several passes (clean and
edited): a pass whose inputs were all checked before counts once. Reading a moved tensor's values before its
forward pass cannot work on meta: host-side reads use `lm.encode`. Not covered: what runs after the forward
pass (statistics on activations that live on a GPU; benchmarks/gpu_main_job.py runs that on a real GPU), and
HF's `generate` (steer --generate), which builds each step's inputs itself from the moved prompt.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

import lamina
from lamina.analyses.causal.from_tune import site_statistics
from lamina.analyses.causal.interventions import Ablate, reference_stats, spread_windows
from lamina.analyses.causal.metrics import edit_metrics
from lamina.analyses.causal.patching import patch_pair
from lamina.analyses.causal.steering import steer_sweep
from lamina.analyses.causal.tune_metrics import PairKL
from lamina.analyses.neurons.maximize import maximize
from lamina.analyses.neurons.top_examples import top_examples
from lamina.analyses.profile.laminar import profile
from lamina.analyses.tuning import contrasts
from lamina.analyses.verify import verify
from lamina.analyses.vocab.logit_lens import logit_lens
from lamina.capture import run_capture
from lamina.data.corpus import Document
from lamina.data.windows import batches, corpus_windows
from lamina.edits import Edit
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

    def inputs(self, *args, **kwargs):
        moved = super().inputs(*args, **kwargs)             # the real method: to meta
        if all(id(t) in self.real for t in moved.values()):
            return moved                                      # moved already (tokenize, then capture)
        given = [t for t in [*args, *kwargs.values()] if torch.is_tensor(t)]
        assert not any(t.device == META and id(t) not in self.real for t in given), \
            "an input was put on the model's device by something other than lm.inputs"
        self.on = CPU
        try:
            values = super().inputs(*args, **kwargs)         # inputs_embeds keep their graph: clone is differentiable
        finally:
            self.on = META
        # a copy: the swap must not touch the caller's tensors
        self.real.update({id(moved[k]): values[k].clone() for k in moved})
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
        handles = [m.register_forward_pre_hook(self.check, with_kwargs=True)
                   for m in (self.model, self.model.base_model)]
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


def test_maximize_and_discrete_search_move_every_pass(pair):
    """Soft prompts (inputs_embeds, with their gradient) and the discrete prompts both go through lm.inputs."""
    lm, meta = pair
    options = dict(steps=3, seeds=1, fluency_lambdas=(0.0, 1.0), search_steps=2, search_top_k=4, search_batch=4,
                   progress=False)
    want = maximize(lm, "mlp_post.1:3", **options)
    with meta.checking():
        got = maximize(meta, "mlp_post.1:3", **options)
    # the width probe; 3 Adam steps, the final vectors and the re-score; per lambda the start, 2 x (gradient
    # pass + candidates pass) and the final numbers
    assert meta.checked == 1 + (3 + 1 + 1) + 2 * (1 + 2 * 2 + 1)
    w, g = want.runs[0], got.runs[0]
    assert g["history"] == w["history"] and g["ids"] == w["ids"]
    assert g["rescored_activation"] == w["rescored_activation"] and g["rescored_prompt_ce"] == w["rescored_prompt_ce"]
    assert [p["ids"] for p in got.fluency] == [p["ids"] for p in want.fluency]
    assert [p["activation"] for p in got.fluency] == [p["activation"] for p in want.fluency]


def test_ablate_reference_and_edit_metrics_move_every_batch(pair):
    lm, meta = pair
    docs, context, batch_size = _docs(), 8, 3
    n_batches = len(list(batches(corpus_windows(lm, docs, context), batch_size, lm.tokenizer.pad_token_id)))
    kw = dict(context=context, batch_size=batch_size, max_tokens=None)
    with meta.checking():
        ref = reference_stats(meta, "mlp_post.1", docs, **kw)
    assert meta.checked == n_batches
    want_ref = reference_stats(lm, "mlp_post.1", docs, **kw)
    torch.testing.assert_close(ref.mean, want_ref.mean, rtol=0, atol=0)
    torch.testing.assert_close(ref.samples, want_ref.samples, rtol=0, atol=0)

    edit = Ablate("mlp_post.1", neurons=(7, 9), method="mean", reference=want_ref)
    with meta.checking():
        got = edit_metrics(meta, [edit], docs, n_boot=20, **kw)
    # one moved batch per window batch, read by the clean and the edited pass (the second sees checked inputs)
    assert meta.checked == 2 * n_batches
    want = edit_metrics(lm, [edit], docs, n_boot=20, **kw)
    assert got.per_doc.equals(want.per_doc) and want.per_doc.kl.sum() > 0


def test_patching_steering_and_from_tune_move_every_pass(pair):
    lm, meta = pair
    with meta.checking():
        got = patch_pair(meta, TEXTS[0], TEXTS[0].replace("cat", "dog"), "resid_pre", [0, 1], "kl", batch_size=4)
    want = patch_pair(lm, TEXTS[0], TEXTS[0].replace("cat", "dog"), "resid_pre", [0, 1], "kl", batch_size=4)
    # the corrupt capture, the clean and corrupt logits, then 2 layers x every position, 4 patches a pass
    assert meta.checked == 3 + math.ceil(2 * len(want.positions) / 4)
    np.testing.assert_array_equal(got.raw, want.raw)
    assert np.isfinite(want.raw).sum() == 2 * len(want.positions)

    prompts, docs = ["She did", "They could"], _docs()
    vector = np.ones(lm.anatomy.d_model, dtype=np.float32)
    before = meta.checked
    with meta.checking():
        got_table, _ = steer_sweep(meta, "resid_post.1", vector, [0.0, 2.0], " not", prompts, docs,
                                   max_tokens=64, progress=False)
    n_metric_batches = len(list(batches(spread_windows(lm, docs, max_tokens=64), 8, lm.tokenizer.pad_token_id)))
    # the prompts' scale and clean log-probs; per alpha the steered log-probs and the metrics' batches
    assert meta.checked - before == 2 + 2 * (1 + n_metric_batches)
    want_table, _ = steer_sweep(lm, "resid_post.1", vector, [0.0, 2.0], " not", prompts, docs, max_tokens=64,
                                progress=False)
    assert got_table.equals(want_table) and want_table.delta_target.iloc[0] == 0.0

    pairs = [(TEXTS[0], TEXTS[0].replace("was", "was not")), (TEXTS[1], TEXTS[1].replace("did not", "did"))]
    edit = Edit("mlp_post.1", "zero", neurons=[3, 4])
    before = meta.checked
    with meta.checking():
        got_kl = PairKL(pairs).score(meta, [edit])
        got_var, got_norm = site_statistics(meta, "mlp_post.1", [t for pair in pairs for t in pair])
    assert meta.checked - before == 2   # the pairs' one batch, then the texts' one batch
    np.testing.assert_array_equal(got_kl, PairKL(pairs).score(lm, [edit]))
    want_var, want_norm = site_statistics(lm, "mlp_post.1", [t for pair in pairs for t in pair])
    np.testing.assert_array_equal(got_var, want_var)
    assert got_norm == want_norm


def test_logit_lens_moves_its_capture_and_head_check(pair):
    lm, meta = pair
    with meta.checking():
        got = logit_lens(meta, TEXTS[:2], k=2, progress=False)
    assert meta.checked == 2   # the capture, then the head check on the model's own logits
    want = logit_lens(lm, TEXTS[:2], k=2, progress=False)
    pd.testing.assert_frame_equal(got.table, want.table)


def test_tune_samples_move_every_batch(pair):
    """tune's own sampling (the contrast's texts through the model) and its examples, via the public lamina.tune."""
    lm, meta = pair
    samples = contrasts.category(lm.tokenizer, max_per_group=12)
    options = dict(site="mlp_post", layers=[1], permutations=0, probes=False, n_examples=1, progress=False)
    with meta.checking():
        got = lamina.tune(meta, samples, **options)
    assert meta.checked >= 2   # the samples' batches (how many: ModelSource's length budget), then the examples
    want = lamina.tune(lm, samples, **options)
    pd.testing.assert_frame_equal(got.neurons, want.neurons)
