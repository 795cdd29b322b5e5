"""Write a tuning result: tidy tables (CSV, Parquet, JSON), the laminar tuning plot, and one HTML page
with the test / family / correction statement, top-neuron tables and a token heatmap of the top neurons."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lamina.analyses.tuning.run_folder import flat as _flat
from lamina.analyses.tuning.run_folder import write_tune_tables
from lamina.report.figures import pyplot, save
from lamina.report.html import block, image, page, section, table
from lamina.report.jsonio import write_json


def plot_tuning(result, path: Path) -> Path:
    """Fraction of significant neurons per layer with the permutation null's band; best decoding beside it."""
    plt = pyplot()
    lam, s = result.laminar, result.settings
    fig, ax = plt.subplots(figsize=(10, 5.6))
    ax.plot(lam["layer"], lam["fraction_significant"], "o-", color="C0", label="significant (BH FDR)")
    ax.plot(lam["layer"], lam["fraction_significant_bonferroni"], "s--", color="C0", alpha=0.5, ms=4,
            label="significant (Bonferroni)")
    if "null_high" in lam:
        ax.fill_between(lam["layer"], lam["null_low"], lam["null_high"], color="C7", alpha=0.3,
                        label=f"permutation null, central 95% ({s['permutations']} permutations)")
        ax.plot(lam["layer"], lam["null_mean"], ":", color="C7")
    ax.set(xlabel="layer", ylabel=f"fraction of {s['site']} neurons significant",
           title=f"{s['contrast']} on {s['model']}: {s['site']} (family: {s['family']})")
    ax.set_ylim(bottom=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax2 = ax.twinx()
    if s["kind"] == "binary":
        ax2.plot(lam["layer"], lam["best_cv_balanced_accuracy"], "^-", color="C1",
                 label="best single neuron: CV balanced accuracy")
        if "best_cv_balanced_accuracy_null_max" in lam:  # the reference a reader compares the best neuron with
            ax2.fill_between(lam["layer"], lam["best_cv_balanced_accuracy_null_mean"],
                             lam["best_cv_balanced_accuracy_null_max"], color="C1", alpha=0.15,
                             label=f"best neuron under null labels: mean to max ({s['reference_permutations']} "
                                   "labellings)")
        if "probe_best_auc" in lam:
            ax2.plot(lam["layer"], lam["probe_best_auc"], "v-", color="C2", label="best sparse probe: held-out AUC")
        ax2.set_ylim(0.4, 1.02)
        ax2.set_ylabel("held-out accuracy / AUC")
    else:
        ax2.plot(lam["layer"], np.abs(lam["best_r"]), "^-", color="C1", label="best |r|")
        ax2.plot(lam["layer"], lam["median_abs_r"], "v-", color="C2", label="median |r|")
        ax2.set_ylabel("|correlation|")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    fig.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower center", ncol=3)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return save(fig, path, tight=False)


def plot_length_lessons(lessons: dict, path: Path, max_layers: int = 6) -> Path:
    """Activation histograms by token-length group for a few layers, and per-neuron r quantiles per layer."""
    plt = pyplot()
    hist, rq = lessons["histograms"], lessons["r_quantiles"]
    layers = sorted(hist["layer"].unique())
    shown = [layers[i] for i in np.unique(np.linspace(0, len(layers) - 1, min(max_layers, len(layers))).astype(int))]
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(3.2 * (len(shown) + 1), 3.4))
    for ax, L in zip(axes, shown):
        h = hist[hist["layer"] == L]
        for g, part in h.groupby("group", sort=False):
            ax.step(part["bin_left"], part["density"], where="post", label=f"{g} (n={part['n_tokens'].iat[0]})")
        ax.set_yscale("log")
        ax.set(title=f"layer {L}", xlabel="activation")
    axes[0].set_ylabel("fraction of values")
    axes[0].legend(fontsize=6)
    ax = axes[-1]
    ax.fill_between(rq["layer"], rq["r_q05"], rq["r_q95"], alpha=0.2, label="5-95%")
    ax.fill_between(rq["layer"], rq["r_q25"], rq["r_q75"], alpha=0.4, label="25-75%")
    ax.plot(rq["layer"], rq["r_median"], "k-", label="median")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(title="per-neuron r with length", xlabel="layer")
    ax.legend(fontsize=6)
    fig.suptitle(f"token length groups: median {lessons['median_char_len']:g} characters", fontsize=9)
    return save(fig, path, dpi=110)


def heatmap_block(examples: list[dict]) -> dict:
    """Tokens coloured by a neuron's activation (red positive, blue negative; the read token underlined)."""
    shown = []
    for ex in examples:
        scale = ex["scale"] or 1.0
        texts = [{"group": item["group"],
                  "tokens": [{"text": tok, "value": v, "positive": bool(v >= 0), "read": bool(read),
                              "alpha": min(abs(v) / scale, 1.0) if np.isfinite(v) else 0.0}
                             for tok, v, read in zip(item["tokens"], item["values"], item["read"])]}
                 for item in ex["texts"]]
        shown.append({"neuron": ex["neuron"], "scale": scale, "texts": texts})
    return block("heatmap", examples=shown)


def write_tuning(result, out: Path) -> dict[str, Path]:
    """All outputs of `lamina tune` in `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = result.settings
    p = write_tune_tables(result, out)
    p.update(json=out / "tuning.json", plot=out / "tuning.png", html=out / "tuning.html")
    if result.controls is not None:
        p["controls"] = out / "controls.csv"
        result.controls.to_csv(p["controls"], index=False)
    if s.get("specificity"):
        p["specificity"] = out / "specificity.csv"
        pd.DataFrame(s["specificity"]["layers"]).to_csv(p["specificity"], index=False)
    if len(result.probes):
        p["probes"] = out / "probes.csv"
        _flat(result.probes).to_csv(p["probes"], index=False)
    if result.samples.split_report is not None and len(result.samples.split_report):
        p["splits"] = out / "split_words.csv"
        _flat(result.samples.split_report).to_csv(p["splits"], index=False)
    if result.lessons:
        p["length_histograms"] = out / "length_histograms.csv"
        p["length_r"] = out / "length_r_quantiles.csv"
        p["length_plot"] = out / "length_lessons.png"
        result.lessons["histograms"].to_csv(p["length_histograms"], index=False)
        result.lessons["r_quantiles"].to_csv(p["length_r"], index=False)
        result.lessons["r_histogram"].to_csv(out / "length_r_histogram.csv", index=False)
        plot_length_lessons(result.lessons, p["length_plot"])
    write_json(p["json"], {**result.to_json(), "examples": result.examples})
    plot_tuning(result, p["plot"])
    p["html"].write_text(page(f"Neuron tuning: {s['contrast']} on {s['model']}", tuning_sections(result, p)))
    return p


def tuning_sections(result, paths: dict) -> list[dict]:
    s, lam = result.settings, result.laminar
    balance = [{"group": g, **v} for g, v in (s.get("confound_balance") or {}).items()]
    statement = block("tuning_statement", settings=s, unit_counts=json.dumps(s["unit_counts"]),
                      group_sizes=json.dumps(s["group_sizes"]), null_total=s.get("null_total"), balance=balance)
    cols = [c for c in ("layer", "n_significant", "fraction_significant", "n_significant_bonferroni",
                        "n_significant_occurrence", "null_low", "null_high", "null_count_high", "permutation_p",
                        "n_significant_controlled", "best_neuron", "best_t", "best_r", "best_cv_balanced_accuracy",
                        "best_cv_balanced_accuracy_null_max", "best_cv_auc", "n_separable", "probe_best_auc",
                        "probe_best_auc_null_max", "probe_best_k",
                        "probe_best_rank_by", "replication_r", "token_eps2_top", "top_neurons") if c in lam]
    sections = [section("What was tested", statement),
                section("Laminar tuning profile", image(paths["plot"]), table(lam[cols])),
                section("Top neurons (all layers)", table(result.top))]
    if s.get("specificity"):
        sp = s["specificity"]
        spec = pd.DataFrame(sp["layers"]).rename(columns={"fraction_a": f"fraction {sp['first']}",
                                                          "fraction_c": f"fraction {sp['second']}",
                                                          "overlap": "significant in both"})
        keep = ["layer", f"fraction {sp['first']}", f"fraction {sp['second']}", "significant in both",
                "expected_overlap", "p_overlap", "jaccard", "sign_agreement", "spearman_rho"]
        sections.insert(2, section("Specificity: a second category against the same controls",
                                   block("specificity_note", statement=sp["statement"], note=sp["note"]),
                                   table(spec[keep])))
    if result.controls is not None:
        sections.insert(2, section("Negative controls", block("items", items=list(s.get("controls", []))),
                                   table(result.controls)))
    if s["kind"] == "binary" and result.neurons["separable"].any():
        sections.append(section("Perfectly separable neurons",
                                block("separable_note", n=int(result.neurons["separable"].sum()))))
    if len(result.probes):
        best = result.probes.loc[result.probes.groupby(["layer", "rank_by"])["auc"].idxmax()]
        sections.append(section("Sparse probes (best k per layer and ranking)",
                                table(_flat(best.drop(columns=["neurons"])))))
    if result.lessons:
        sections.append(section("Token length lessons", image(paths["length_plot"]),
                                table(result.lessons["r_quantiles"])))
    if result.examples:
        sections.append(section("Top neurons over sample texts", heatmap_block(result.examples)))
    return sections


def plot_context(result, path: Path) -> Path:
    """Mean correlation per layer for each comparison of the context lesson."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, part in result.per_layer.groupby("comparison", sort=False):
        ax.plot(part["layer"], part["mean_r"], "o-", label=name)
    s = result.settings
    ax.set(xlabel="layer", ylabel="mean Pearson r of activation vectors",
           title=f"context lesson on {s['model']}: {s['site']} ({s['n_words']} words)")
    ax.legend(fontsize=8)
    return save(fig, path)


def write_context(result, out: Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = {"per_word": out / "context_words.csv", "per_layer": out / "context_layers.csv",
         "json": out / "context.json", "plot": out / "context.png", "html": out / "context.html"}
    result.per_word.to_csv(p["per_word"], index=False)
    result.per_layer.to_csv(p["per_layer"], index=False)
    write_json(p["json"], result.to_json())
    plot_context(result, p["plot"])
    s = result.settings
    wide = result.per_layer.pivot(index="layer", columns="comparison", values="mean_r").reset_index()
    p["html"].write_text(page(f"Context lesson: {s['model']}",
                              [section("What was compared", block("context_note", settings=s)),
                               section("Per layer", image(p["plot"]), table(wide))]))
    return p
