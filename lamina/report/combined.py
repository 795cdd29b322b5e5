"""`lamina report`: one HTML page from the results that earlier commands wrote into a folder.

Every verb's `--out` folder is recognised by the files it writes: verify.json, profile.json, the logit
lens's logit_lens_layers.csv, tune-compare's comparison.json, and the causal verbs' result.json beside
per_doc.csv (ablate), causal_laminar.csv (ablate --from-tune), patch_effect.csv (patch) or steer_sweep.csv
(steer). Each gets a section (its figure and key numbers); every other HTML page (tune's, the neuron
pages) is linked.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from lamina.errors import InputError
from lamina.report.html import image, page, table
from lamina.report.output import write_text_atomic


def _verify_sections(folder: Path) -> list[tuple[str, str]]:
    r = json.loads((folder / "verify.json").read_text())
    f = r["final"]
    status = "<b class='good'>holds</b>" if r["ok"] else "<b class='bad'>does NOT hold</b>"
    text = (
        f"<p class='note'><b>{html.escape(r['model'])}</b> ({r['architecture']}, {r['n_layers']} blocks). "
        f"Below the last block, a hook on block L equals <code>hidden_states[L+1]</code> to a max |diff| of "
        f"{max(row['max_abs_diff'] for row in r['layers'][:-1]):.3g}. The last block's raw output differs from "
        f"<code>hidden_states[-1]</code> by {f['raw_max_abs_diff']:.4g} (raw max |x| {f['raw_max_abs']:.4g}, "
        f"after <code>{r['final_norm_module']}</code> {f['normed_max_abs']:.4g}); pushed through "
        f"<code>{r['final_norm_module']}</code> the difference is {f['normed_max_abs_diff']:.3g}. "
        f"The measured hidden-state map {status}.</p>"
    )
    mapping = pd.DataFrame([{"hidden index": k, "equals site": v} for k, v in r["hidden_state_map"].items()])
    return [("Hooks vs hidden states (lamina verify)", text + image(folder / "verify.png")),
            ("Hidden-state map, measured", table(mapping))]


def _profile_sections(folder: Path) -> list[tuple[str, str]]:
    data = json.loads((folder / "profile.json").read_text())
    s = data["settings"]
    layers = pd.DataFrame(data["layers"])
    massive = pd.DataFrame(data["massive_activations"])
    cols = ["reading", "mean_token_norm", "std", "kurtosis", "frac_positive", "top1_abs", "top2_abs", "top3_abs",
            "median_abs", "n_massive_in_top16"]
    note = (f"<p class='note'>{s['kind']} by <b>{s['method']}</b> on {html.escape(s['model'])}: {s['n_docs']} documents, "
            f"{s['n_windows']} windows of {s['context']} tokens. Massive activations: {s['massive_rule']}.</p>")
    summary = "<p>none found</p>"
    if len(massive):
        summary = table(massive.assign(abs=massive["value"].abs()).sort_values("abs", ascending=False)
                        .drop(columns="abs").head(30))
    return [(f"Laminar profile: {s['kind']} ({s['method']})", note + image(folder / "profile.png")),
            ("Layer x dimension map of max |x|", image(folder / "profile_dim_map.png")),
            ("Largest massive activations", summary),
            ("Per-layer profile table", table(layers[[c for c in cols if c in layers]]))]


def _num(value, fmt: str = ".4g") -> str:
    """A number of a result (null when it was not defined) as text."""
    return "n/a" if value is None else format(value, fmt)


def _figure(path: Path) -> str:
    return image(path) if path.is_file() else ""


def _lens_sections(folder: Path) -> list[tuple[str, str]]:
    layers = pd.read_csv(folder / "logit_lens_layers.csv")
    last = layers.iloc[-1]
    note = (f"<p class='note'>Each block's raw residual through the model's own final norm and unembedding "
            f"(<code>{html.escape(str(folder.name))}</code>). KL(final || lens) is {_num(layers.kl.iloc[0])} "
            f"at block 0 and {_num(last.kl)} at block {int(last.layer)}; the lens's top token agrees with the "
            f"final one on {last.top1_agreement:.0%} of positions at the last block.</p>")
    return [("Logit lens (lamina logit-lens)", note + _figure(folder / "logit_lens_layers.png")
             + _figure(folder / "logit_lens_heatmap.png") + table(layers))]


def _tune_compare_sections(folder: Path) -> list[tuple[str, str]]:
    data = json.loads((folder / "comparison.json").read_text())
    s, o = data["settings"], data["overall"]
    labels = " against ".join(html.escape(str(x)) for x in s.get("labels", ()))
    note = (f"<p class='note'>{labels}: statistic <code>{html.escape(str(s.get('statistic', 't')))}</code> over "
            f"{o['n_neurons']} neurons; Pearson r {_num(o['pearson_r'], '.3f')}, Spearman rho "
            f"{_num(o['spearman_rho'], '.3f')}; significant in both {o['overlap']} (expected by chance "
            f"{_num(o['expected_overlap'], '.1f')}, p = {_num(o['p_overlap'], '.2g')}).</p>")
    return [("Two tune runs compared (lamina tune-compare)", note + _figure(folder / "comparison.png")
             + table(pd.DataFrame(data["layers"])))]


def _ablate_sections(folder: Path, r: dict) -> list[tuple[str, str]]:
    d, k = r["delta_loss"], r["kl"]
    neurons = r["neurons"] if isinstance(r["neurons"], str) else ", ".join(map(str, r["neurons"]))
    note = (f"<p class='note'><b>{html.escape(r['model'])}</b>: {html.escape(r['method'])}-ablating "
            f"<code>{html.escape(r['site'])}</code> neurons {html.escape(neurons)} at {html.escape(str(r['positions']))} "
            f"positions, over {r['n_tokens']} tokens of {r['n_docs']} documents. Loss {_num(r['baseline']['loss'])} "
            f"clean, {_num(r['ablated']['loss'])} ablated: change {_num(d['value'], '+.4g')} "
            f"[{_num(d['low'], '+.4g')}, {_num(d['high'], '+.4g')}]; KL(clean || ablated) {_num(k['value'], '.3g')} "
            f"[{_num(k['low'], '.3g')}, {_num(k['high'], '.3g')}] ({html.escape(r['interval'])}).</p>")
    return [("Ablation (lamina ablate)", note)]


def _from_tune_sections(folder: Path, r: dict) -> list[tuple[str, str]]:
    s = r.get("settings", r)
    note = (f"<p class='note'><b>{html.escape(str(s.get('model', '')))}</b>: the top {s.get('k')} tuned neurons "
            f"of a tune run ablated per layer against {s.get('repeats')} variance-matched random draws.</p>")
    return [("A tune run tested causally (lamina ablate --from-tune)", note + _figure(folder / "causal_laminar.png")
             + table(pd.read_csv(folder / "causal_laminar.csv")))]


def _patch_sections(folder: Path, r: dict) -> list[tuple[str, str]]:
    import numpy as np

    effect = np.array([[np.nan if v is None else v for v in row] for row in r["effect"]], dtype=float)
    best = ""
    if np.isfinite(effect).any():
        i, p = np.unravel_index(np.nanargmax(effect), effect.shape)
        best = f" The largest normalised effect, {effect[i, p]:.3f}, is at layer {r['layers'][i]}, position {r['positions'][p]}."
    note = (f"<p class='note'><b>{html.escape(r['model'])}</b>: patching <code>{html.escape(r['kind'])}</code> at "
            f"{len(r['layers'])} layers x {len(r['positions'])} positions, {r['n_pairs']} pair(s); metric "
            f"{html.escape(r['metric'])}: clean {_num(r['clean'])}, corrupt {_num(r['corrupt'])}.{best}</p>")
    return [("Activation patching (lamina patch)", note + _figure(folder / "patch_heatmap.png"))]


def _steer_sections(folder: Path, r: dict) -> list[tuple[str, str]]:
    sweep = pd.read_csv(folder / "steer_sweep.csv")
    note = (f"<p class='note'><b>{html.escape(r['model'])}</b>: steering at <code>{html.escape(r['site'])}</code>, "
            f"multiplier x {_num(r['scale'], '.3g')} (the site's mean activation norm) x the unit direction; target "
            f"{html.escape(repr(r['target']))} after {r['n_prompts']} prompts (baseline log p "
            f"{_num(r['baseline_target_logprob'], '.3f')}).</p>")
    return [("Steering (lamina steer)", note + _figure(folder / "steer_sweep.png")
             + table(sweep.rename(columns={"alpha": "multiplier"})))]


CAUSAL = (("per_doc.csv", _ablate_sections), ("causal_laminar.csv", _from_tune_sections),
          ("patch_effect.csv", _patch_sections), ("steer_sweep.csv", _steer_sections))


def _causal_sections(folder: Path) -> list[tuple[str, str]]:
    """The result.json of ablate, patch or steer, told apart by the table written beside it."""
    r = json.loads((folder / "result.json").read_text())
    for name, sections in CAUSAL:
        if (folder / name).is_file():
            return sections(folder, r)
    return []


def _browse_sections(folder: Path) -> list[tuple[str, str]]:
    """The command that opens each activation store under `folder` in `lamina browse` (after `lamina index`)."""
    items = []
    for manifest in sorted(folder.rglob("manifest.json")):
        store = manifest.parent
        shown = html.escape(str(store))
        if (store / "index" / "index.json").exists():
            items.append(f"<li><code>lamina browse {shown}</code></li>")
        else:
            items.append(f"<li><code>lamina index {shown} &amp;&amp; lamina browse {shown}</code> (no index yet)</li>")
    if not items:
        return []
    return [("Neuron browser", "<p class='note'>Every neuron of these activation stores, with its top examples, "
                               f"histogram and token search, in a local web app:</p><ul>{''.join(items)}</ul>")]


def write_report(folder: Path) -> Path:
    """Collect every verb's results under `folder` into folder/report.html."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of results; run lamina verify/profile with --out there first")
    sections: list[tuple[str, str]] = []
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
        links = "".join(f"<li><a href='{html.escape(str(p.relative_to(folder)))}'>{html.escape(str(p.relative_to(folder)))}</a></li>"
                        for p in pages)
        sections.append(("Other pages", f"<ul>{links}</ul>"))
    if not sections:
        raise InputError(f"no lamina results (an --out folder of verify, profile, logit-lens, ablate, patch, steer, "
                         f"tune or tune-compare, or a store) found under {folder}")
    return write_text_atomic(folder / "report.html", page("lamina report", sections))
