"""The site grammar: layers, aliases, neurons, suggestions, and the input errors of capture."""
from __future__ import annotations

import warnings

import pytest

from lamina.errors import InputError, LaminaError, SiteError
from lamina.sites import LAYER_KINDS, Site, parse_neuron, parse_sites

N = 12  # GPT-2 small's depth


def names(spec, n_layers: int = N) -> list[str]:
    return [s.name for s in parse_sites(spec, n_layers)]


def test_kind_without_layer_means_every_layer():
    assert names(["resid_post"]) == [f"resid_post.{i}" for i in range(N)]
    assert names("mlp_post") == [f"mlp_post.{i}" for i in range(N)]
    assert names(["hidden"]) == [f"hidden.{i}" for i in range(N + 1)]
    assert len(names(list(LAYER_KINDS))) == len(LAYER_KINDS) * N


def test_single_sites_and_model_wide_names():
    assert parse_sites(["mlp_post.3"], N) == [Site("mlp_post", 3)]
    assert parse_sites(["hidden.0"], N) == [Site("hidden", 0)]
    assert parse_sites(["hidden.12"], N) == [Site("hidden", 12)]
    assert names(["embed", "final_norm.input", "final_norm.scale", "final_norm.normalized", "final_norm", "logits"]) == [
        "embed", "final_norm.input", "final_norm.scale", "final_norm.normalized", "final_norm", "logits"]
    assert names("resid_post.1,mlp_post.2, q.5") == ["resid_post.1", "mlp_post.2", "q.5"]
    assert Site("q", 5).name == "q.5" and Site("logits").name == "logits" and str(Site("k", 0)) == "k.0"


def test_negative_layers_count_from_the_end():
    assert parse_sites(["resid_post.-1"], N) == [Site("resid_post", 11)]
    assert parse_sites(["mlp_post.-12"], N) == [Site("mlp_post", 0)]
    assert parse_sites(["hidden.-1"], N) == [Site("hidden", 12)]
    assert names(["resid_post.-1"], 4) == ["resid_post.3"]


@pytest.mark.parametrize("alias, ours", [
    ("blocks.5.hook_resid_post", "resid_post.5"),
    ("blocks.0.hook_resid_pre", "resid_pre.0"),
    ("blocks.3.hook_resid_mid", "resid_mid.3"),
    ("blocks.5.mlp.hook_post", "mlp_post.5"),
    ("blocks.5.mlp.hook_pre", "mlp_pre.5"),
    ("blocks.4.hook_attn_out", "attn_out.4"),
    ("blocks.4.hook_mlp_out", "mlp_out.4"),
    ("blocks.2.attn.hook_q", "q.2"),
    ("blocks.2.attn.hook_k", "k.2"),
    ("blocks.2.attn.hook_v", "v.2"),
    ("ln_final.hook_scale", "final_norm.scale"),
    ("ln_final.hook_normalized", "final_norm.normalized"),  # before the norm's weight and bias
    ("unembed.hook_in", "final_norm"),
])
def test_transformerlens_aliases(alias, ours):
    assert names([alias]) == [ours]


def test_duplicates_collapse_in_first_seen_order():
    assert names(["blocks.1.hook_resid_post", "resid_post.1", "mlp_post.2", "resid_post.-11"]) == [
        "resid_post.1", "mlp_post.2"]


def test_neurons():
    assert parse_neuron("mlp_post.5:1234", N) == (Site("mlp_post", 5), 1234)
    assert parse_neuron("blocks.5.mlp.hook_post:7", N) == (Site("mlp_post", 5), 7)
    assert parse_neuron("resid_post.-1:0", N) == (Site("resid_post", 11), 0)
    for bad in ("mlp_post.5", "mlp_post.5:x", "mlp_post.5:"):
        with pytest.raises(SiteError, match="SITE:INDEX"):
            parse_neuron(bad, N)
    with pytest.raises(SiteError, match="give a layer"):
        parse_neuron("mlp_post:5", N)  # a kind alone names every layer


def test_unknown_site_lists_close_matches():
    with pytest.raises(SiteError, match="did you mean") as err:
        parse_sites(["resid_pots.3"], N)
    assert "resid_post.3" in str(err.value)
    assert "resid_pots.3" in str(err.value)
    with pytest.raises(SiteError, match="final_norm.scale"):
        parse_sites(["final_norm.scal"], N)
    with pytest.raises(SiteError, match="site kinds are"):  # nothing close: list the kinds instead
        parse_sites(["zzzz"], N)
    with pytest.raises(SiteError):
        parse_sites([], N)
    assert issubclass(SiteError, LaminaError)


@pytest.mark.parametrize("bad", ["resid_post.12", "resid_post.-13", "hidden.13", "q.99"])
def test_layer_out_of_range(bad):
    with pytest.raises(SiteError, match="out of range") as err:
        parse_sites([bad], N)
    assert "0-11" in str(err.value) or "0-12" in str(err.value)


def test_model_bound_parsing_uses_its_depth(llama):
    assert [s.name for s in llama.sites("resid_post")] == [f"resid_post.{i}" for i in range(4)]
    with pytest.raises(SiteError, match="out of range"):
        llama.sites(["mlp_post.4"])
    assert llama.neuron("mlp_post.3:511") == (Site("mlp_post", 3), 511)
    acts = llama.capture(["Hello world."], sites=["blocks.1.hook_resid_post", "ln_final.hook_scale"])
    assert set(acts) == {"resid_post.1", "final_norm.scale"}  # keys are our names, not the aliases
    assert acts["final_norm.scale"].shape[-1] == 1


@pytest.mark.parametrize("texts", [[""], ["   "], ["fine", "\n\t"], []])
def test_empty_text_is_an_input_error(llama, texts):
    with pytest.raises(InputError, match="empty"):
        llama.capture(texts, sites=["resid_post.0"])


def test_too_long_text_errors_and_truncate_warns(llama):
    context = llama.model.config.max_position_embeddings
    text = "hello " * (context + 50)
    with pytest.raises(InputError, match="longer than the model's context"):
        llama.capture([text], sites=["resid_post.0"])
    with pytest.warns(UserWarning, match="truncated"):
        acts = llama.capture([text], sites=["resid_post.0"], truncate=True)
    assert acts["resid_post.0"].shape[:2] == (1, context)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a text that fits gives no warning
        llama.capture(["hello"], sites=["resid_post.0"], truncate=True)
