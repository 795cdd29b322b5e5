"""The founding experiment as a picture: per-layer |hook - hidden state| and the magnitudes behind it."""
from __future__ import annotations

from pathlib import Path

from lamina.report.figures import pyplot, save

FLOOR = 1e-12  # log axes cannot show an exact zero; exact zeros are drawn at this floor and labelled


def plot_verify(result: dict, path: Path) -> Path:
    """Two panels: max |diff| per layer (raw and after the final norm), and max |activation| per layer."""
    plt = pyplot()
    layers = [row["layer"] for row in result["layers"]]
    raw = [max(row["max_abs_diff"], FLOOR) for row in result["layers"]]
    last = layers[-1]
    normed = max(result["final"]["normed_max_abs_diff"], FLOOR)

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.semilogy(layers, raw, "o-", label="hook on block L  vs  hidden_states[L+1]")
    left.semilogy([last], [normed], "s", color="tab:green", markersize=10,
                  label="last block's hook through the final norm  vs  hidden_states[-1]")
    left.axhline(FLOOR, color="grey", lw=0.5, ls=":")
    left.text(0, FLOOR * 3, "exact zero", color="grey", fontsize=8)
    left.set(xlabel="block L", ylabel="max |difference|", title=f"{result['model']}: hooks vs hidden states")
    left.legend(fontsize=8, loc="upper left")

    right.semilogy(layers, [row["hook_max_abs"] for row in result["layers"]], "o-", label="hook (raw residual stream)")
    right.semilogy(layers, [row["hidden_max_abs"] for row in result["layers"]], "x--", label="hidden_states[L+1]")
    right.set(xlabel="block L", ylabel="max |activation|",
              title=f"the final norm ({result['final_norm_module']}) rescales the last layer")
    right.legend(fontsize=8)
    return save(fig, path)
