"""`lamina browse`: the JSON API and pages against the index, 404s, path traversal, and a real browser."""
import html
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lamina.data.corpus import Document, load_corpus
from lamina.extract import extract
from lamina.index import IndexSettings, write_index

starlette = pytest.importorskip("starlette", reason="install the browse extra: pip install -e '.[browse]'")
from starlette.testclient import TestClient

from lamina.browse.app import create_app


@pytest.fixture(scope="module")
def store(llama, tmp_path_factory):
    docs = [Document(d.id, d.text[:900]) for d in load_corpus(max_docs=6)]
    store = extract(llama, docs, ["mlp_post.1", "resid_post.2"], tmp_path_factory.mktemp("b") / "store", context=32,
                    dtype="float32", max_tokens=1000, progress=False)
    write_index(store, settings=IndexSettings(k=6), progress=False)
    return store


@pytest.fixture(scope="module")
def tune_dir(store, tmp_path_factory):
    """A tune run's neurons.parquet (the columns `lamina tune` writes), with values known to the test."""
    folder = tmp_path_factory.mktemp("t") / "negation"
    folder.mkdir()
    pd.DataFrame({"layer": [1, 1], "neuron": [3, 4], "name": ["mlp_post.1:3", "mlp_post.1:4"], "q": [0.001, 0.5],
                  "significant": [True, False], "cohens_d": [1.25, 0.1]}).to_parquet(folder / "neurons.parquet")
    return folder


@pytest.fixture(scope="module")
def client(store, tune_dir):
    return TestClient(create_app(store.folder, [tune_dir]), base_url="http://127.0.0.1", raise_server_exceptions=False)


def test_api_neuron_equals_the_store(client, store):
    r = client.get("/api/neuron/mlp_post.1/3")
    assert r.status_code == 200
    data = r.json()
    x = store.numpy("mlp_post.1", [3])[:, 0].astype(np.float64)
    assert (data["site"], data["index"]) == ("mlp_post.1", 3)
    assert data["max"] == pytest.approx(x.max(), rel=1e-6) and data["std"] == pytest.approx(x.std(), rel=1e-5)
    assert data["mean"] == pytest.approx(x.mean(), rel=1e-4, abs=1e-7)
    acts = [e["activation"] for e in data["top_examples"]]
    np.testing.assert_allclose(acts, np.sort(x)[::-1][:6], rtol=1e-6)         # highest first
    first = data["top_examples"][0]
    assert {"activation", "doc", "position", "tokens", "activations"} <= set(first)
    assert len(first["tokens"]) == len(first["activations"]) and first["doc"] in store.manifest["doc_ids"]
    assert data["tuning"][0]["cohens_d"] == 1.25 and data["tuning"][0]["run"] == "negation"


def _neurons_listed(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'href="/neuron/mlp_post\.1/(\d+)"', page)]


def test_site_table_sorts_filters_and_joins_tune_columns(client, store):
    x = store.numpy("mlp_post.1").max(0)
    page = client.get("/site/mlp_post.1?sort=max&desc=1").text
    assert _neurons_listed(page) == np.argsort(-x, kind="stable")[:100].tolist()      # one page, by max
    by_d = client.get("/site/mlp_post.1?sort=negation.cohens_d").text
    assert _neurons_listed(by_d)[:2] == [3, 4] and "negation.cohens_d" in by_d and "1.25" in by_d
    kept = client.get(f"/site/mlp_post.1?min.max={np.sort(x)[-5]}").text
    assert sorted(_neurons_listed(kept)) == sorted(np.argsort(-x)[:5].tolist())
    assert client.get("/site/mlp_post.1?sort=nope").status_code == 400
    assert client.get("/site/mlp_post.1?col=nope").status_code == 400


def test_every_neuron_is_reachable_through_pages_and_columns_are_chosen(client, store):
    width = store.width("mlp_post.1")
    seen, url = [], "/site/mlp_post.1?sort=neuron&desc=0&limit=70"
    while url:
        page = client.get(url).text
        seen += _neurons_listed(page)
        found = re.search(r'<a href="(\?[^"]+)" id="next">', page)
        url = "/site/mlp_post.1" + html.unescape(found.group(1)) if found else None
    assert seen == list(range(width))
    default = client.get("/site/mlp_post.1").text
    header = re.findall(r"<th><a [^>]+>([^<]+)</a></th>", default)
    assert header == ["neuron", "top_token", "max", "mean", "std", "frac_pos", "negation.q", "negation.significant",
                      "negation.cohens_d"]
    chosen = client.get("/site/mlp_post.1?col=max&col=negation.q").text
    assert re.findall(r"<th><a [^>]+>([^<]+)</a></th>", chosen) == ["neuron", "max", "negation.q"]


def test_top_examples_on_the_page_are_distinct_windows(client):
    from lamina.browse.data import distinct_windows

    api = client.get("/api/neuron/mlp_post.1/3").json()
    kept, left_out = distinct_windows(api["top_examples"], 16 + 8)
    assert len(kept) + left_out == len(api["top_examples"])
    for i, a in enumerate(kept):
        for b in kept[i + 1:]:
            assert a["doc_index"] != b["doc_index"] or abs(a["position"] - b["position"]) > 24
    page = client.get("/neuron/mlp_post.1/3").text
    assert page.count('<div class="ex">') == len(kept) + len(api["quantile_samples"])


def test_search_says_what_it_looked_for(client, store):
    page = client.get("/search", params={"q": "zzzqqq", "site": "mlp_post.1"}).text
    assert "no token is &#39;zzzqqq&#39;; the first token of its tokenization" in page
    hit = client.get("/api/search", params={"q": "the"}).json()
    assert hit["how"] == "the tokens whose text, without its spaces, is 'the'" and hit["n_rows"] == store.n_rows
    missing = [t for t, n in client.get("/api/search", params={"q": "seven"}).json().items() if t == "occurrences"]
    assert missing == ["occurrences"]
    page = client.get("/search", params={"q": "seven"}).text
    assert "Looked for the tokens whose text, without its spaces, is &#39;seven&#39;" in page


def test_missing_things_and_paths_outside_are_404(client):
    for url in ["/api/neuron/mlp_post.7/1", "/api/neuron/mlp_post.1/999999", "/neuron/mlp_post.1/x",
                "/neuron/..%2F..%2F..%2Fetc%2Fpasswd/0", "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
                "/static/../manifest.json", "/site/..%2Fmanifest.json", "/manifest.json", "/index/index.json"]:
        r = client.get(url)
        assert r.status_code == 404, url
        assert "Traceback" not in r.text and "root:" not in r.text and '"settings"' not in r.text
    assert "it holds mlp_post.1, resid_post.2" in client.get("/api/neuron/mlp_post.7/1").json()["error"]


def test_token_search_ranks_neurons_by_mean_on_the_token(client, store):
    data = client.get("/api/search", params={"q": "the", "site": "mlp_post.1"}).json()
    tokens = store.tokens()
    x = store.numpy("mlp_post.1")
    rows = tokens["token_id"].isin(data["token_ids"]).to_numpy()
    assert data["occurrences"] == int(rows.sum()) > 0
    mean = x[rows].mean(0)
    assert [n["neuron"] for n in data["neurons"][:5]] == np.argsort(-mean)[:5].tolist()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(store, tune_dir, llama):
    uvicorn = pytest.importorskip("uvicorn", reason="install the browse extra: pip install -e '.[browse]'")
    app = create_app(store.folder, [tune_dir])
    app.state.data._lm = llama                  # the model that wrote the store (the session's, symmetry broken)
    config = uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{config.port}"
    srv.should_exit = True
    thread.join(10)


def test_in_a_real_browser(server, client, llama, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (browser: apt-get install chromium)")
    if CHROMIUM is None:
        pytest.skip("no chromium: apt-get install -y chromium (Debian), then pip install playwright")
    shots = Path(os.environ.get("LAMINA_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(server + "/")
        assert "random:llama" in page.title()
        page.wait_for_selector("#profile .main-svg")                    # plotly drew the laminar profile
        page.screenshot(path=str(shots / "browse-overview.png"))
        page.click("table a[href='/site/mlp_post.1']")
        page.wait_for_url("**/site/mlp_post.1")
        page.screenshot(path=str(shots / "browse-site.png"))
        page.click("table tr:nth-child(2) td a")                        # the neuron with the largest max
        page.wait_for_selector("#top .ex")
        site, index = page.url.split("/neuron/")[1].split("/")
        api = client.get(f"/api/neuron/{site}/{index}").json()
        first = page.locator("#top .ex").first
        spans = first.locator("span.tok")
        example = api["top_examples"][0]
        assert spans.count() == len(example["tokens"])
        backgrounds = spans.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
        titles = spans.evaluate_all("els => els.map(e => e.title)")
        for v, bg, title in zip(example["activations"], backgrounds, titles):
            alpha = float(bg.split(",")[3].rstrip(")")) if bg.count(",") == 3 else (0.0 if "0, 0, 0" in bg else 1.0)
            assert alpha == pytest.approx(min(1.0, abs(v) / api["max"]), abs=0.01)  # the browser keeps 2 decimals
            assert ("255, 110, 0" in bg) == (v >= 0) or alpha < 0.01
            assert float(title) == pytest.approx(v, rel=1e-9)
        page.wait_for_selector("#hist .main-svg")
        page.screenshot(path=str(shots / "browse-neuron.png"), full_page=False)
        page.goto(server + "/search")
        page.fill("#q", "the")
        page.click("#go")
        page.wait_for_selector("table td a")
        best = page.locator("table td a").first.inner_text()
        assert int(best) == client.get("/api/search", params={"q": "the"}).json()["neurons"][0]["neuron"]
        page.screenshot(path=str(shots / "browse-search.png"))
        text = "The cat <b>sat</b> on the mat."
        page.goto(server + f"/neuron/{site}/{index}")
        page.fill("#text", text)
        page.click("#run")
        page.wait_for_selector("#live-result .ex")
        live = page.locator("#live-result span.tok")
        ids = llama.tokenizer(text)["input_ids"]
        assert live.evaluate_all("els => els.map(e => e.textContent)") == [
            llama.tokenizer.decode([i]).replace(" ", "·") for i in ids]
        want = llama.capture([text], [site])[site][0, :, int(index)].tolist()
        got = [float(t) for t in live.evaluate_all("els => els.map(e => e.title)")]
        np.testing.assert_allclose(got, want, rtol=1e-6)
        page.screenshot(path=str(shots / "browse-live.png"))
        browser.close()


def test_report_links_to_the_browser(store, tmp_path):
    from lamina.report.combined import write_report

    text = write_report(store.folder.parent).read_text()
    assert f"lamina browse {store.folder}" in text
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "manifest.json").write_text("{}")
    assert f"lamina index {tmp_path / 's'} &amp;&amp; lamina browse" in write_report(tmp_path).read_text()
