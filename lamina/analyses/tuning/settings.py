"""The settings of a tuning run (`lamina tune`, `tuning.tune`): one frozen dataclass, its defaults in one place.

Built by keyword (`TuneSettings(site="mlp_post", layers="10-20")`), checked on construction (InputError, one
line), and written to `tuning.json` as they are (`settings.tune_settings`). The command line takes its
defaults from here. This module imports nothing heavy: the CLI reads it when it starts.
"""
from __future__ import annotations

from dataclasses import dataclass

from lamina import validate
from lamina.errors import InputError

TUNE_KINDS = ("mlp_post", "mlp_pre", "mlp_out", "attn_out", "resid_pre", "resid_mid", "resid_post", "q", "k", "v")
FDR_FAMILIES = ("layer", "model")           # --fdr-family: BH over each layer, or over the whole model
PROBE_KS = (1, 2, 4, 8, 16, 32, 64)           # neurons per sparse probe (capped by the samples: tuning/layer.probe_ks)
P_METHODS = ("analytic", "permutation")      # the primary p: the test's own (CR2 / t), or randomization at the unit
PROBE_RANKINGS = ("mean_diff", "anova_f", "l1")  # = lamina.stats.probes.RANKINGS (tests/test_tune_settings.py)


def _frozen(value):
    """Lists as tuples, so that a settings object is hashable and compares by value."""
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class TuneSettings:
    """How a tuning run tests, corrects and reports (the contrast's own options are the SampleSet's)."""

    site: str = "mlp_post"              # the site kind tuned, one of TUNE_KINDS
    layers: str | tuple | None = None   # "all" / None, "0-29", "3,5,7", or layer indices
    permutations: int = 100             # null labellings for the count of significant neurons
    fdr_family: str = "layer"           # BH / Bonferroni family: each layer, or the whole model
    alpha: float = 0.05
    cv: int = 5                         # folds of the cross-validated logistic regression and probes
    ks: tuple = PROBE_KS
    rank_by: tuple = PROBE_RANKINGS     # sparse-probe rankings
    probes: bool = True
    top_n: int = 10                     # neurons in the top table and per layer
    n_examples: int = 4                 # neurons shown as token heatmaps (0: none)
    batch_size: int = 8                 # texts of 128 tokens per forward pass (the model path)
    seed: int = 0
    unit: str | tuple | None = None     # None / "default" (the samples' units), "occurrence", or unit columns
    keep_first_token: bool = False      # resid sites: keep the samples read at position 0
    reference_permutations: int = 5     # null labellings for the best CV accuracy / probe AUC's reference
    control: tuple = ()                 # design factors (sample / table columns) entered as fixed effects
    p: str = "analytic"                 # "analytic" (the primary test's p) or "permutation" (at the unit)

    def __post_init__(self):
        for name in ("layers", "ks", "rank_by", "unit", "control"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.site not in TUNE_KINDS:
            raise InputError(f"unknown --site '{self.site}'; choose one of {', '.join(TUNE_KINDS)}")
        if self.fdr_family not in FDR_FAMILIES:
            raise InputError(f"unknown --fdr-family '{self.fdr_family}'; choose layer or model")
        if self.permutations < 0 or self.reference_permutations < 0:
            raise InputError("--permutations and --reference-permutations must be 0 or more")
        if self.cv < 2:
            raise InputError("--cv must be at least 2 folds")
        validate.fraction("alpha", self.alpha)
        if self.p not in P_METHODS:
            raise InputError(f"unknown --p '{self.p}'; choose {' or '.join(P_METHODS)}")
        units = tuple(u.strip() for u in self.unit.split(",")) if isinstance(self.unit, str) else tuple(self.unit or ())
        both = [c for c in self.control if c in units]
        if both:
            raise InputError(f"'{both[0]}' is given as both --control and --unit-column; a factor is either a unit "
                             "of replication (clustered) or a design factor crossed with the units (--control)")
        bad = [r for r in self.rank_by if r not in PROBE_RANKINGS]
        if bad:
            raise InputError(f"unknown ranking '{bad[0]}'; choose from {', '.join(PROBE_RANKINGS)}")
