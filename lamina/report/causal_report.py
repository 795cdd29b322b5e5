"""Figures of the causal commands (heatmap, laminar, sweep); their result.json is written by report/jsonio.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lamina.report.figures import pyplot, save

METRIC_LABELS = {"loss": "change in next-token loss after the labelled tokens (nats)",
                 "kl": "KL(clean || edited) at the labelled tokens", "probe": "change in the label probe's log-odds",
                 "target": "change in log p(targets) after the prompts", "pair-kl": "change in KL(negated || affirmed)"}


def patch_heatmap(result, path: Path) -> Path:
    """The layer x position heatmap of the normalised patching effect."""
    plt = pyplot()
    eff = result.effect
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * eff.shape[1], 1.5 + 0.22 * eff.shape[0]))
    lim = max(1.0, float(np.nanmax(np.abs(eff)))) if np.isfinite(eff).any() else 1.0
    im = ax.imshow(eff, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
    labels = result.tokens if result.tokens else [str(p) for p in result.positions]
    ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
    ax.set_yticks(range(len(result.layers)), result.layers, fontsize=7)
    s = result.settings
    ax.set_xlabel("clean-text token" if result.tokens else "position from the end (-1 = final token)")
    ax.set_ylabel(f"layer ({s['kind']})")
    ax.set_title(f"{s['model']}: patching {s['kind']}, {s['metric']} ({s['n_pairs']} pair(s))", fontsize=9)
    fig.colorbar(im, ax=ax, label="normalised effect (0 clean, 1 corrupt)")
    return save(fig, path)


def causal_laminar(result, fractions: dict[int, float] | None, path: Path) -> Path:
    """Top-K edit effect per layer with the random band, beside the fraction of tuned neurons."""
    plt = pyplot()
    d, st = result.per_layer, result.settings
    fig, axes = plt.subplots(1, 2, figsize=(9, 1.8 + 0.25 * len(d)), sharey=True)
    step = float(np.diff(np.sort(d.layer)).min()) if len(d) > 1 else 1.0
    if fractions:
        axes[0].barh(d.layer, [fractions.get(int(L), np.nan) for L in d.layer], height=0.6 * step, color="0.5")
    axes[0].set_xlabel("fraction of neurons tuned (tune run)")
    axes[0].set_ylabel("layer")
    axes[1].barh(d.layer, d.random_high - d.random_low, left=d.random_low, height=0.6 * step, color="0.85",
                 label=f"random K, 95% band ({result.settings['repeats']} draws)")
    axes[1].errorbar(d.top_effect, d.layer, xerr=[d.top_effect - d.top_low, d.top_high - d.top_effect],
                     fmt="o", color="C3", label=f"top {st['k']} tuned (95% CI over {st.get('unit', 'pair')} units)")
    axes[1].set_yticks(d.layer)
    axes[1].axvline(0, color="k", lw=0.5)
    axes[1].set_xlabel(METRIC_LABELS.get(st.get("metric_name"), "change in KL(negated || affirmed)"))
    axes[1].legend(fontsize=7)
    edit = st.get("edit", f"{st['method']}-ablating")
    fig.suptitle(f"{st['model']}: {edit} tuned vs random neurons", fontsize=9)
    return save(fig, path)


def steer_plot(table, info: dict, path: Path) -> Path:
    """Target effect against perplexity cost over the alpha sweep."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(table.delta_loss, table.delta_target,
                yerr=[table.delta_target - table.delta_target_low, table.delta_target_high - table.delta_target],
                fmt="o-")
    for r in table.itertuples():
        ax.annotate(f"{r.alpha:g}", (r.delta_loss, r.delta_target), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("change in next-token loss (nats)")
    ax.set_ylabel(f"change in log p({info['target']!r})")
    ax.set_title(f"{info['model']}: steering at {info['site']} (labels: alpha)", fontsize=9)
    return save(fig, path)
