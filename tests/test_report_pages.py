"""Every HTML page lamina writes, fed hostile text: no payload becomes markup, in the file and in headless Chromium.

The payloads reach the pages through each channel a user controls: corpus and table text (tokens in the
heatmaps and neuron pages), table labels and column names (tune's groups and unit), settings and results read
back from files (a results folder someone else wrote), and folder names (the report's links and store commands).
The verbs themselves write the pages, on random:llama with tiny settings.
"""
from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lamina.cli import app

IMG = "<img src=x onerror=window.__pwned=1>"
SCRIPT = "</script><script>window.__pwned=1</script>"
COMMENT = "<!--"
HOSTILE = f"{IMG} {SCRIPT} {COMMENT}"
NAME = f"{IMG}{COMMENT}"                          # a folder name ("/" cannot be in one)
SHOWN = "onerror=window.__pwned=1"               # what a reader sees of the payload, as text
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MODEL = ["--model", "random:llama"]
TUNE = ["tune", *MODEL, "-c", "labels", "--label-column", "label", "--unit-column", IMG, "--layers", "1",
        "--permutations", "0", "--reference-permutations", "0", "--no-probes", "--cv", "3"]
runner = CliRunner()

# each page, and the last section it must still have
LAST_HEADING = {"report.html": "Other pages", "tuning.html": "Top neurons over sample texts",
                "context.html": "Per layer", "profile.html": "Per-layer table",
                "neuron_mlp_post.1_3.html": "Random tokens"}


def run(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def poison(value):
    """Every string of a result file replaced by the payloads (numbers, lists and keys kept)."""
    if isinstance(value, dict):
        return {k: poison(v) for k, v in value.items()}
    if isinstance(value, list):
        return [poison(v) for v in value]
    return HOSTILE if isinstance(value, str) else value


def write_hostile_profile(lm, docs, out):
    """profile.html of a real profile whose settings and massive activations carry the payloads."""
    from lamina.analyses.profile.laminar import profile
    from lamina.report.profile_report import write_profile

    result = profile(lm, docs, progress=False)
    result.settings.update(model=HOSTILE, corpus=HOSTILE, massive_rule=HOSTILE)
    row = {"reading": HOSTILE, "layer": 1, "dim": 7, "value": 123.0, "doc": HOSTILE, "position": 2, "token": HOSTILE}
    result.massive = pd.DataFrame([row], columns=result.massive.columns)
    write_profile(result, out)


def write_hostile_context(lm, out):
    """context.html of the context lesson on words made of the payloads (each ends in a letter: a word)."""
    from lamina.analyses.tuning.context_lessons import context_effect
    from lamina.report.tuning_report import write_context

    words = [IMG + "x", SCRIPT + "y", COMMENT + "z"]
    write_context(context_effect(lm, [(w, f"They said {w} twice.") for w in words], layers="1"), out)


@pytest.fixture(scope="module")
def pages(tmp_path_factory, llama):
    from lamina.data.corpus import load_corpus

    root = tmp_path_factory.mktemp("pages") / NAME
    root.mkdir()
    docs = root / f"{NAME}.txt"                                      # the document id of its text
    docs.write_text(f"The cat sat {HOSTILE} on the mat.\n\nA dog ran {HOSTILE} past the house.\n")
    texts = [f"Speaker {i % 12} said {HOSTILE} the {w} was here." for i, w in enumerate(["cat", "dog", "tree"] * 16)]
    groups = np.where(np.random.default_rng(0).permutation(np.arange(48) < 24), IMG, SCRIPT)
    table = root / "t.csv"
    pd.DataFrame({"text": texts, "label": groups, IMG: [i % 12 for i in range(48)]}).to_csv(table, index=False)
    run(*TUNE, "--table", table, "--out", root / f"tune {NAME}")
    run(*TUNE, "--table", table, "--seed", "1", "--out", root / f"tune1 {NAME}")
    run("tune-compare", root / f"tune {NAME}", root / f"tune1 {NAME}", "--out", root / f"compare {NAME}")
    write_hostile_context(llama, root / f"context {NAME}")
    write_hostile_profile(llama, load_corpus(docs), root / f"profile {NAME}")
    run("verify", *MODEL, "--out", root / f"verify {NAME}")
    run("logit-lens", *MODEL, "--text", HOSTILE, "--out", root / f"lens {NAME}")
    run("patch", *MODEL, "--clean", f"The cat {HOSTILE}", "--corrupt", f"The dog {HOSTILE}", "--out",
        root / f"patch {NAME}")
    run("steer", *MODEL, "--neuron", "mlp_post.1:3", "--multipliers", "0,2", "--max-tokens", "64", "--corpus", docs,
        "--prompt", HOSTILE, "--target", " <", "--out", root / f"steer {NAME}")
    run("ablate", *MODEL, "--site", "mlp_post.1", "--neurons", "0-3", "--max-tokens", "64", "--corpus", docs,
        "--out", root / f"ablate {NAME}")
    run("top-examples", *MODEL, "--neuron", "mlp_post.1:3", "--corpus", docs, "--out", root / f"neuron {NAME}")
    run("maximize", *MODEL, "--neuron", "mlp_post.1:3", "--steps", "3", "--seeds", "2", "--n-tokens", "3", "--out",
        root / f"neuron {NAME}")
    for name in ("verify.json", "result.json", "comparison.json"):      # results as someone else may have left them
        for path in root.rglob(name):
            path.write_text(json.dumps(poison(json.loads(path.read_text()))))
    (root / f"store {NAME}").mkdir()
    (root / f"store {NAME}" / "manifest.json").write_text("{}")       # a store the report points the browser to
    run("report", root)
    found = {p.name: p for p in root.rglob("*.html")}
    assert set(LAST_HEADING) <= set(found), sorted(found)
    return root, {name: found[name] for name in LAST_HEADING}


class Markup(HTMLParser):
    """The elements of a page, and the text of its headings."""

    def __init__(self):
        super().__init__()
        self.elements, self.headings, self._in_h2 = [], [], False

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag == "h2":
            self._in_h2 = True
            self.headings.append("")

    def handle_endtag(self, tag):
        self._in_h2 = self._in_h2 and tag != "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings[-1] += data


def parse(text: str) -> Markup:
    parser = Markup()
    parser.feed(text)
    parser.close()
    return parser


def test_the_payloads_never_appear_unescaped_in_any_page(pages):
    for name, path in pages[1].items():
        text = path.read_text(encoding="utf-8")
        for raw in (IMG, SCRIPT, COMMENT, "<script", "<img src=x"):
            assert raw not in text, (name, raw)
        assert SHOWN in text, name                                   # the payload reached the page, as text
        parsed = parse(text)
        assert not [t for t, _ in parsed.elements if t in ("script", "iframe", "object", "embed", "svg")], name
        assert all(not k.startswith("on") for _, attrs in parsed.elements for k in attrs), name
        images = [a["src"] for t, a in parsed.elements if t == "img"]
        assert all(src.startswith("data:image/png;base64,") for src in images), name
        assert parsed.headings[-1] == LAST_HEADING[name], (name, parsed.headings)
        assert text.rstrip().endswith("</html>") and parsed.elements[-1][0] == "footer", name


def test_the_payloads_are_shown_whole_where_a_page_names_them(pages):
    root, found = pages
    escaped = "&lt;img src=x onerror=window.__pwned=1&gt;"
    report = found["report.html"].read_text(encoding="utf-8")
    headings = parse(report).headings
    for heading in ("Hooks vs hidden states (lamina verify)", "Hidden-state map, measured",
                    "Logit lens (lamina logit-lens)", "Ablation (lamina ablate)", "Activation patching (lamina patch)",
                    "Steering (lamina steer)", "Two tune runs compared (lamina tune-compare)", "Neuron browser"):
        assert heading in headings, headings
    assert report.count(escaped) >= 20                              # notes, tables, store commands, links
    # the links to the other pages: relative, percent-encoded, and they resolve to the files
    hrefs = [a["href"] for t, a in parse(report).elements if t == "a"]
    assert hrefs and all(h.startswith("./") for h in hrefs)
    assert sorted(root / unquote(h[2:]) for h in hrefs) == sorted(p for p in root.rglob("*.html")
                                                                     if p.name != "report.html")
    tuning = found["tuning.html"].read_text(encoding="utf-8")
    assert f"<b>[{escaped}]</b>" in tuning and f"<b>Unit of replication:</b> {escaped}" in tuning
    assert escaped in found["profile.html"].read_text(encoding="utf-8")


def _copy_without_csp(path, folder):
    """The page without its Content-Security-Policy, so that escaping alone has to keep scripts from running."""
    text = path.read_text(encoding="utf-8")
    csp = '<meta http-equiv="Content-Security-Policy"'
    assert csp in text
    start = text.index(csp)
    copy = folder / path.name
    copy.write_text(text[:start] + text[text.index(">", start) + 1:], encoding="utf-8")
    return copy


def test_no_payload_runs_or_breaks_a_page_in_chromium(pages, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (browser: apt-get install chromium)")
    if CHROMIUM is None:
        pytest.skip("no chromium: apt-get install -y chromium (Debian), then pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        for name, path in pages[1].items():
            source = path.read_text(encoding="utf-8")
            for target in (path, _copy_without_csp(path, tmp_path)):
                page.goto(target.as_uri())
                page.wait_for_load_state("load")
                assert page.evaluate("window.__pwned") is None, name
                assert page.locator("script, iframe, object, embed, svg").count() == 0, name
                assert page.evaluate("[...document.querySelectorAll('*')].filter(e => [...e.attributes]"
                                     ".some(a => a.name.startsWith('on'))).length") == 0, name
                headings = page.locator("h2").all_inner_texts()
                assert len(headings) == source.count("<h2>") and headings[-1] == LAST_HEADING[name], name
                assert page.evaluate("document.body.lastElementChild.tagName") == "FOOTER", name
                assert SHOWN in page.locator("body").inner_text(), name
                broken = page.evaluate("[...document.images].filter(i => !i.complete || !i.naturalWidth).length")
                assert broken == 0, name                                 # the figures load (data: images)
        browser.close()
