"""`lamina report`: one HTML page from the results that earlier commands wrote into a folder.

Every verb's `--out` folder is recognised by the files it writes: verify.json, profile.json, the logit
lens's logit_lens_layers.csv, tune-compare's comparison.json, and the causal verbs' result.json beside
per_doc.csv (ablate), causal_laminar.csv (ablate --from-tune), patch_effect.csv (patch) or steer_sweep.csv
(steer). Each gets a section (its figure and key numbers); every other HTML page (tune's, the neuron
pages) is linked.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lamina.errors import InputError
from lamina.report.html import block, figure, image, link, page, section, table, text
from lamina.report.output import write_text_atomic


def _verify_sections(folder: Path) -> list[dict]:
    r = json.loads((folder / "verify.json").read_text())
    below_last = max(row["max_abs_diff"] for row in r["layers"][:-1])
    mapping = pd.DataFrame([{"hidden index": k, "equals site": v} for k, v in r["hidden_state_map"].items()])
    return [section("Hooks vs hidden states (lamina verify)", block("verify_note", result=r, below_last=below_last),
                    image(folder / "verify.png")),
            section("Hidden-state map, measured", table(mapping))]


def _profile_sections(folder: Path) -> list[dict]:
    data = json.loads((folder / "profile.json").read_text())
    s = data["settings"]
    layers = pd.DataFrame(data["layers"])
    massive = pd.DataFrame(data["massive_activations"])
    cols = ["reading", "mean_token_norm", "std", "kurtosis", "frac_positive", "top1_abs", "top2_abs", "top3_abs",
            "median_abs", "n_massive_in_top16"]
    summary = text("none found")
    if len(massive):
        summary = table(massive.assign(abs=massive["value"].abs()).sort_values("abs", ascending=False)
                        .drop(columns="abs").head(30))
    return [section(f"Laminar profile: {s['kind']} ({s['method']})", block("profile_note", settings=s),
                    image(folder / "profile.png")),
            section("Layer x dimension map of max |x|", image(folder / "profile_dim_map.png")),
            section("Largest massive activations", summary),
            section("Per-layer profile table", table(layers[[c for c in cols if c in layers]]))]


def _lens_sections(folder: Path) -> list[dict]:
    layers = pd.read_csv(folder / "logit_lens_layers.csv")
    last = layers.iloc[-1]
    note = block("lens_note", folder=folder.name, kl_first=float(layers.kl.iloc[0]), kl_last=float(last.kl),
                 last_layer=int(last.layer), agreement=float(last.top1_agreement))
    return [section("Logit lens (lamina logit-lens)", note, figure(folder / "logit_lens_layers.png"),
                    figure(folder / "logit_lens_heatmap.png"), table(layers))]


def _tune_compare_sections(folder: Path) -> list[dict]:
    data = json.loads((folder / "comparison.json").read_text())
    s = data["settings"]
    note = block("compare_note", labels=[str(x) for x in s.get("labels", ())], statistic=str(s.get("statistic", "t")),
                 overall=data["overall"])
    return [section("Two tune runs compared (lamina tune-compare)", note, figure(folder / "comparison.png"),
                    table(pd.DataFrame(data["layers"])))]


def _ablate_sections(folder: Path, r: dict) -> list[dict]:
    neurons = r["neurons"] if isinstance(r["neurons"], str) else ", ".join(map(str, r["neurons"]))
    return [section("Ablation (lamina ablate)", block("ablate_note", result=r, neurons=neurons))]


def _from_tune_sections(folder: Path, r: dict) -> list[dict]:
    s = r.get("settings", r)
    note = block("from_tune_note", model=str(s.get("model", "")), k=s.get("k"), repeats=s.get("repeats"))
    return [section("A tune run tested causally (lamina ablate --from-tune)", note,
                    figure(folder / "causal_laminar.png"), table(pd.read_csv(folder / "causal_laminar.csv")))]


def _patch_sections(folder: Path, r: dict) -> list[dict]:
    effect = np.array([[np.nan if v is None else v for v in row] for row in r["effect"]], dtype=float)
    best = None
    if np.isfinite(effect).any():
        i, p = np.unravel_index(np.nanargmax(effect), effect.shape)
        best = {"effect": float(effect[i, p]), "layer": r["layers"][i], "position": r["positions"][p]}
    return [section("Activation patching (lamina patch)", block("patch_note", result=r, best=best),
                    figure(folder / "patch_heatmap.png"))]


def _steer_sections(folder: Path, r: dict) -> list[dict]:
    sweep = pd.read_csv(folder / "steer_sweep.csv")
    return [section("Steering (lamina steer)", block("steer_note", result=r), figure(folder / "steer_sweep.png"),
                    table(sweep.rename(columns={"alpha": "multiplier"})))]


CAUSAL = (("per_doc.csv", _ablate_sections), ("causal_laminar.csv", _from_tune_sections),
          ("patch_effect.csv", _patch_sections), ("steer_sweep.csv", _steer_sections))


def _causal_sections(folder: Path) -> list[dict]:
    """The result.json of ablate, patch or steer, told apart by the table written beside it."""
    r = json.loads((folder / "result.json").read_text())
    for name, sections in CAUSAL:
        if (folder / name).is_file():
            return sections(folder, r)
    return []


def _browse_sections(folder: Path) -> list[dict]:
    """The command that opens each activation store under `folder` in `lamina browse` (after `lamina index`)."""
    stores = [{"path": str(m.parent), "indexed": (m.parent / "index" / "index.json").exists()}
              for m in sorted(folder.rglob("manifest.json"))]
    return [section("Neuron browser", block("browse_note", stores=stores))] if stores else []


def write_report(folder: Path) -> Path:
    """Collect every verb's results under `folder` into folder/report.html."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of results; run lamina verify/profile with --out there first")
    sections: list[dict] = []
    for verify_json in sorted(folder.rglob("verify.json")):
        sections += _verify_sections(verify_json.parent)
    for profile_json in sorted(folder.rglob("profile.json")):
        sections += _profile_sections(profile_json.parent)
    for lens_csv in sorted(folder.rglob("logit_lens_layers.csv")):
        sections += _lens_sections(lens_csv.parent)
    for result_json in sorted(folder.rglob("result.json")):
        sections += _causal_sections(result_json.parent)
    for comparison_json in sorted(folder.rglob("comparison.json")):
        sections += _tune_compare_sections(comparison_json.parent)
    sections += _browse_sections(folder)
    pages = [p for p in sorted(folder.rglob("*.html")) if p.name != "report.html"]
    if pages:
        links = [link(p.relative_to(folder).as_posix()) for p in pages]
        sections.append(section("Other pages", block("links", links=links)))
    if not sections:
        raise InputError(f"no lamina results (an --out folder of verify, profile, logit-lens, ablate, patch, steer, "
                         f"tune or tune-compare, or a store) found under {folder}")
    return write_text_atomic(folder / "report.html", page("lamina report", sections))
