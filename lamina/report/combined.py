"""`lamina report`: one HTML page from the results that earlier commands wrote into a folder."""
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
    """Collect verify/ and profile*/ results under `folder` into folder/report.html."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of results; run lamina verify/profile with --out there first")
    sections: list[tuple[str, str]] = []
    for verify_json in sorted(folder.rglob("verify.json")):
        sections += _verify_sections(verify_json.parent)
    for profile_json in sorted(folder.rglob("profile.json")):
        sections += _profile_sections(profile_json.parent)
    sections += _browse_sections(folder)
    pages = [p for p in sorted(folder.rglob("*.html")) if p.name != "report.html"]
    if pages:
        links = "".join(f"<li><a href='{html.escape(str(p.relative_to(folder)))}'>{html.escape(str(p.relative_to(folder)))}</a></li>"
                        for p in pages)
        sections.append(("Other pages", f"<ul>{links}</ul>"))
    if not sections:
        raise InputError(f"no lamina results (verify.json, profile.json, a store) found under {folder}")
    return write_text_atomic(folder / "report.html", page("lamina report", sections))
