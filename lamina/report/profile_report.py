"""Write a laminar profile: table (CSV, Parquet, JSON), per-layer curves, the layer x dimension map, HTML."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lamina.report.figures import pyplot, save
from lamina.report.html import block, image, page, section, table, text
from lamina.report.jsonio import write_json


def plot_profile_curves(result, path: Path) -> Path:
    plt = pyplot()
    t = result.table
    hooks = t[~t["reading"].str.contains(r"\(")]
    fig, ax = plt.subplots(figsize=(10, 5))
    for col, style in (("top1_abs", "o-"), ("top2_abs", "^-"), ("top3_abs", "v-"), ("mean_token_norm", "s--"),
                       ("median_abs", "x:")):
        ax.semilogy(hooks["layer"], hooks[col], style, label=col.replace("_", " "))
    for _, row in t[t["reading"].str.contains(r"\(")].iterrows():
        marker = "*" if row["normalized"] else "D"
        ax.semilogy([row["layer"]], [row["top1_abs"]], marker, markersize=12, label=f"top1 |x|: {row['reading']}")
    s = result.settings
    ax.set(xlabel="layer", ylabel="magnitude (log scale)",
           title=f"laminar profile of {s['kind']} ({s['method']}) on {s['model']}")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_dim_map(result, path: Path) -> Path:
    from matplotlib.colors import LogNorm

    plt = pyplot()

    data = np.maximum(result.dim_max_abs, 1e-6)
    fig, ax = plt.subplots(figsize=(12, 5))
    im = ax.imshow(data, aspect="auto", interpolation="nearest", norm=LogNorm(vmin=data.min(), vmax=data.max()),
                   cmap="magma")
    ax.set(xlabel="dimension", ylabel="reading (layer)", title="max |x| per layer and dimension (log colour)")
    ax.set_yticks(range(len(result.table)), result.table["reading"], fontsize=6)
    fig.colorbar(im, ax=ax, label="max |x|")
    return save(fig, path)


def write_profile(result, out: Path) -> dict[str, Path]:
    """All outputs of `lamina profile` in `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "profile.csv", "parquet": out / "profile.parquet", "json": out / "profile.json",
             "massive": out / "massive_activations.csv", "curves": out / "profile.png",
             "map": out / "profile_dim_map.png", "html": out / "profile.html"}
    flat = result.table.assign(massive_dims=result.table["massive_dims"].map(lambda d: " ".join(map(str, d))))
    flat.to_csv(paths["csv"], index=False)
    flat.to_parquet(paths["parquet"], index=False)
    result.massive.to_csv(paths["massive"], index=False)
    write_json(paths["json"], result.to_json())
    np.save(out / "profile_dim_max_abs.npy", result.dim_max_abs)
    plot_profile_curves(result, paths["curves"])
    plot_dim_map(result, paths["map"])
    paths["html"].write_text(page(f"Laminar profile: {result.settings['model']}", profile_sections(result, out)))
    return paths


def profile_sections(result, out: Path) -> list[dict]:
    massive = result.massive
    by_dim = (massive.groupby("dim").agg(layers=("layer", lambda v: f"{v.min()}-{v.max()}"),
                                          max_abs=("value", lambda v: float(np.abs(v).max())),
                                          tokens=("token", lambda v: ", ".join(sorted(set(map(repr, v)))[:5])))
              .reset_index() if len(massive) else None)
    columns = ["reading", "n_tokens", "mean_token_norm", "mean", "std", "kurtosis", "frac_positive",
               "top1_abs", "top2_abs", "top3_abs", "median_abs", "n_massive_in_top16"]
    return [
        section("Settings", block("profile_settings", settings=result.settings)),
        section("Per-layer curves", image(out / "profile.png")),
        section("Layer x dimension map", image(out / "profile_dim_map.png")),
        section("Massive activations by dimension",
                table(by_dim) if by_dim is not None else text("none found under the rule above")),
        section("Per-layer table", table(result.table[columns])),
    ]
