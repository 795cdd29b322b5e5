"""Shared fixtures: each random model is loaded once per test session, on first use.

Random models come out of transformers' initialisation with every norm weight at 1 and every bias at 0,
which would let a test pass even when a norm's weight or a bias is skipped. `_break_symmetry` redraws
such constant parameters once, with a fixed seed, so every known-answer test below is discriminating.
"""
from __future__ import annotations

import pytest
import torch

import lamina

MODEL_TYPES = ("gpt2", "llama", "mistral", "qwen2", "qwen3", "phi3", "gpt_neox")
SMALL_TYPES = tuple(t for t in MODEL_TYPES if t != "gpt2")  # 4 layers, d_model 128: fractions of a second


def _break_symmetry(model: torch.nn.Module, seed: int = 1234) -> None:
    """Redraw every constant parameter (norm weights of 1, biases of 0) around its value."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for _, p in sorted(model.named_parameters()):
            if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                p.add_(torch.randn_like(p) * (0.2 if float(p.flatten()[0]) != 0.0 else 0.02))


class ModelCache:
    """`models("llama")` -> the session's LanguageModel for random:llama (loaded on first request)."""

    def __init__(self):
        self._models: dict[str, lamina.LanguageModel] = {}

    def __call__(self, model_type: str) -> lamina.LanguageModel:
        if model_type not in self._models:
            lm = lamina.load(f"random:{model_type}")
            _break_symmetry(lm.model)
            self._models[model_type] = lm
        return self._models[model_type]


@pytest.fixture(scope="session")
def models() -> ModelCache:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return ModelCache()


@pytest.fixture(scope="session")
def gpt2(models) -> lamina.LanguageModel:
    return models("gpt2")


@pytest.fixture(scope="session")
def llama(models) -> lamina.LanguageModel:
    return models("llama")


@pytest.fixture(scope="session")
def neox(models) -> lamina.LanguageModel:
    return models("gpt_neox")
