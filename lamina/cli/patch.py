"""`lamina patch`: activation patching, layer x position (docs/CAUSAL.md).

As the other causal verbs (`cli/causal.py`): every input is checked before the first forward pass, the output
folder first, and the files are written at the end through `atomic_output`.
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from lamina.cli.checks import pairs_check
from lamina.cli.common import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    SeedOpt,
    app,
    console,
    dump,
    load,
    option,
    user_errors,
)
from lamina.errors import InputError
from lamina.report.jsonio import write_json
from lamina.report.output import atomic_output, check_output

OutOpt = option("--out", more="Here: patch_effect.csv, result.json and patch_heatmap.png.")


def read_patch_pairs(spec: str) -> list[tuple]:
    """'negation' (the built-in pairs: affirmed = clean, negated = corrupt) or a TSV with a header:
    clean, corrupt[, target_a, target_b]."""
    from lamina.analyses.tuning.contrasts import read_pairs

    if spec == "negation":
        return read_pairs()
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"--pairs {spec}: no such file (give a TSV, or 'negation' for the built-in pairs)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()[1:], 2):
        if not line.strip():
            continue
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) not in (2, 4) or not all(cols):
            raise InputError(f"{path}:{n}: expected clean<TAB>corrupt[<TAB>target_a<TAB>target_b]")
        rows.append(tuple(cols))
    return rows


def _token_id(lm, text: str, what: str) -> int:
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise InputError(f"{what} {text!r} is {len(ids)} tokens; give one token (mind the leading space: ' Paris')")
    return ids[0]


@app.command("patch")
@user_errors
def patch_command(
    clean: str | None = typer.Option(None, "--clean", help="The clean text (its run is patched)."),
    corrupt: str | None = typer.Option(None, "--corrupt", help="The corrupted text (the values patched in)."),
    pairs: str | None = typer.Option(None, "--pairs", callback=pairs_check,
                                        help="'negation' or a TSV clean, corrupt[, target_a, target_b]."),
    site: str = option("--site", "resid_pre", more="Here: the kind patched at every layer (resid_pre, attn_out, mlp_out, ...)."),
    layers: str | None = option("--layers", more="Default: all."),
    metric: str | None = typer.Option(None, "--metric", help="logit-diff (with targets; the default then) or kl."),
    target_a: str | None = typer.Option(None, "--target-a", help="logit-diff: the token the clean run favours."),
    target_b: str | None = typer.Option(None, "--target-b", help="logit-diff: the token the corrupt run favours."),
    align: str = typer.Option("exact", "--align", help="exact (equal token lengths) or edit (align common prefix and suffix)."),
    max_pairs: int = option("--max-pairs"),
    batch_size: int = option("--batch-size", 32, more="Here: patches per forward pass."),
    out: Path | None = OutOpt,
    model: str = ModelOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    dtype: str | None = DtypeOpt,
    as_json: bool = JsonOpt,
):
    """Activation patching, layer x position: how much of the corrupt output each patch carries."""
    from lamina.analyses.causal.patching import METRICS, patch_pair, patch_pairs
    from lamina.sites import parse_layers

    if out is not None:
        check_output(out)
    if (pairs is None) == (clean is None or corrupt is None):
        raise InputError("give --clean and --corrupt, or --pairs (not both)")
    if align not in ("exact", "edit"):
        raise InputError(f"--align must be exact or edit, not '{align}'")
    if metric is not None and metric not in METRICS:
        raise InputError(f"unknown --metric '{metric}'; choose one of {', '.join(METRICS)}")
    rows = read_patch_pairs(pairs) if pairs else [(clean, corrupt)]
    rows = rows[:max_pairs] if max_pairs else rows
    lm = load(model, seed, device, dtype)
    lm.sites([site])  # an unknown kind fails here, before any forward pass
    chosen = parse_layers(layers, lm.n_layers)
    targets = None
    if target_a or target_b:
        if not (target_a and target_b):
            raise InputError("give both --target-a and --target-b")
        targets = (_token_id(lm, target_a, "--target-a"), _token_id(lm, target_b, "--target-b"))
    rows = [(c, r, _token_id(lm, t[0], "target_a"), _token_id(lm, t[1], "target_b")) if t else (c, r)
            for c, r, *t in [(row[0], row[1], *([row[2:]] if len(row) == 4 else [])) for row in rows]]
    metric = metric or ("logit-diff" if targets or len(rows[0]) == 4 else "kl")
    for k, row in enumerate(rows):  # lengths checked for every pair before the first patch
        from lamina.analyses.causal.patching import align_positions

        align_positions(lm.tokenize(row[0])["input_ids"][0].tolist(), lm.tokenize(row[1])["input_ids"][0].tolist(),
                        align, f"pair {k + 1} ({row[0][:40]!r})")
    if pairs:
        result = patch_pairs(lm, rows, site, chosen, metric, targets, align, batch_size, progress=not as_json)
    else:
        result = patch_pair(lm, clean, corrupt, site, chosen, metric, targets, align, batch_size, progress=not as_json)
    if out is not None:
        import pandas as pd

        from lamina.report.causal_report import patch_heatmap

        effect = pd.DataFrame(result.effect, index=result.layers, columns=result.positions)
        with atomic_output(out) as tmp:
            effect.to_csv(tmp / "patch_effect.csv", index_label="layer")
            write_json(tmp / "result.json", result.to_json())
            patch_heatmap(result, tmp / "patch_heatmap.png")
    if as_json:
        print(dump(result.to_json()))
        return
    console.print(f"{lm.spec}: patched {site} at {len(result.layers)} layers x {len(result.positions)} positions, "
                  f"{result.settings['n_pairs']} pair(s); metric {metric}: clean {result.clean:.4g}, corrupt "
                  f"{result.corrupt:.4g}", highlight=False)
    import numpy as np

    if np.isfinite(result.effect).any():
        i, p = np.unravel_index(np.nanargmax(result.effect), result.effect.shape)
        console.print(f"largest normalised effect {result.effect[i, p]:.3f} at layer {result.layers[i]}, "
                      f"position {result.positions[p]}", highlight=False)
    if result.settings.get("aligned"):
        console.print(Text(f"note: {result.settings['aligned']} pair(s) of different lengths aligned on their common "
                           "prefix and suffix; the edited tokens were not patched", style="dim"))
    if out is not None:
        console.print(f"wrote patch_heatmap.png, patch_effect.csv, result.json to {out}")
