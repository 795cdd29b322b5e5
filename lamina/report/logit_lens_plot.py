"""The logit lens as pictures: per-layer mean KL and rank, and a layer x position map of the top token."""
from __future__ import annotations

from pathlib import Path

from lamina.report.figures import pyplot, save


def plot_lens_layers(result, path: Path) -> Path:
    """Two panels, log y: mean KL(final || layer) in nats, and mean/median rank of the final top-1 token."""
    plt = pyplot()
    per = result.per_layer
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    # A log axis cannot show the last layer's KL of exactly 0: draw zeros a decade below the smallest
    # nonzero mean, and say so on the plot.
    positive = per["kl"][per["kl"] > 0]
    floor = float(positive.min()) / 10 if len(positive) else 1e-12
    left.semilogy(per["layer"], per["kl"].clip(lower=floor), "o-")
    for L in per["layer"][per["kl"] <= 0]:
        left.annotate("0 (exact)", (L, floor), textcoords="offset points", xytext=(-10, 8), fontsize=8, color="grey")
    left.set(xlabel="block L (lens on resid_post.L)", ylabel="mean KL(final || lens) [nats]",
             title=f"{result.model}: logit lens, distance to the final distribution")
    right.semilogy(per["layer"], per["rank_of_final_top"], "o-", label="mean")
    right.semilogy(per["layer"], per["median_rank_of_final_top"], "x--", label="median")
    right.set(xlabel="block L", ylabel="rank of the final top-1 token (1 = top)",
              title="where the final prediction ranks at each layer")
    right.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, tight=False)


def plot_lens_heatmap(result, path: Path, doc: int = 0, max_positions: int = 40) -> Path:
    """Layer x position for one text: colour = entropy of the lens (nats), text = its top token."""
    plt = pyplot()
    t = result.table[result.table["doc"] == doc]
    t = t[t["position"] < max_positions]
    layers = sorted(t["layer"].unique())
    positions = sorted(t["position"].unique())
    grid = t.pivot(index="layer", columns="position", values="entropy").loc[layers, positions]
    top = t.assign(top=t["top_tokens"].map(lambda toks: toks[0])).pivot(index="layer", columns="position", values="top")
    inputs = t[t["layer"] == layers[0]].set_index("position")["token"]

    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(positions) + 2), max(4, 0.35 * len(layers) + 2)))
    im = ax.imshow(grid.values, aspect="auto", origin="lower", cmap="viridis")
    mid = (grid.values.min() + grid.values.max()) / 2
    for i, L in enumerate(layers):
        for j, p in enumerate(positions):
            color = "black" if grid.values[i, j] > mid else "white"  # readable on viridis' light end
            ax.text(j, i, _short(top.loc[L, p]), ha="center", va="center", fontsize=6, color=color)
    ax.set_xticks(range(len(positions)), [_short(inputs[p]) for p in positions], rotation=90, fontsize=7)
    ax.set_yticks(range(len(layers)), [str(L) for L in layers], fontsize=7)
    ax.set(xlabel="input token (position)", ylabel="block L",
           title=f"{result.model}: logit-lens top token per layer (text {doc})")
    fig.colorbar(im, ax=ax, label="entropy of the lens [nats]")
    fig.tight_layout()
    return save(fig, path, tight=False)


def _short(token: str, width: int = 8) -> str:
    token = repr(token)[1:-1].replace("$", r"\$")  # newlines as escapes; "$" would start mathtext
    return token if len(token) <= width else token[: width - 1] + "…"
