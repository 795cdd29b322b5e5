"""The settings of an activation maximization (`lamina maximize`, `maximize.maximize`): one frozen dataclass.

Built by keyword, its sizes checked on construction (InputError, one line; the position is checked with the
target, `neuron_target.resolve_target`), written to the maximize JSON as they are
(`settings`, beside the prompt's prefix). The command line takes its defaults from here; this module imports
nothing heavy.
"""
from __future__ import annotations

from dataclasses import dataclass

from lamina import validate


@dataclass(frozen=True)
class MaximizeSettings:
    """Gradient ascent on soft prompts, their decoding, and the optional fluency-penalised discrete search."""

    position: str = "last"          # the neuron read at the last token, or the mean over the optimised ones
    n_tokens: int = 5               # soft tokens optimised
    steps: int = 200                # Adam steps
    lr: float = 0.1                 # in units of the embedding matrix's per-coordinate std
    norm_penalty: float = 1.0       # weight of mean ((|v| - r) / r)^2, r the mean embedding norm
    seeds: int | tuple = 1          # a count (seeds 0..N-1) or the seeds themselves; stored as the tuple
    projected: bool = False         # forward on the nearest tokens, gradient straight through
    top_k: int = 5                  # nearest tokens listed per optimised vector
    fluency_lambdas: tuple = ()     # the discrete search's penalty weights (none: no search)
    search_steps: int = 30
    search_top_k: int = 64          # candidate tokens per position, by gradient
    search_batch: int = 32          # candidate prompts evaluated per step

    def __post_init__(self):
        seeds = tuple(range(self.seeds)) if isinstance(self.seeds, int) and not isinstance(self.seeds, bool) \
            else tuple(self.seeds)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "fluency_lambdas", tuple(float(x) for x in self.fluency_lambdas))
        for name, value in (("n_tokens", self.n_tokens), ("steps", self.steps), ("seeds", len(seeds)),
                            ("top_k", self.top_k)):
            validate.integer(name, value)
        object.__setattr__(self, "lr", validate.positive("lr", self.lr))
        object.__setattr__(self, "norm_penalty", validate.positive("norm_penalty", self.norm_penalty, allow_zero=True))
