"""Safe to share: threads on one model, hostile stores and indexes, the Host check, hostile text in a real browser."""
import contextlib
import copy
import http.client
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

import lamina
from lamina.capture import StopForward
from lamina.data.corpus import Document, load_corpus
from lamina.edits import Edit
from lamina.errors import StoreError
from lamina.extract import extract
from lamina.index import IndexSettings, NeuronIndex, write_index
from lamina.store import ActivationStore
from lamina.store.shards import sha256_file

TEXTS = ["The cat sat on the mat.", "A second, longer text about dogs and their owners."]
SITES = ["resid_post.1", "mlp_post.2"]


def test_plain_captures_in_threads_equal_the_reference_while_another_thread_holds_an_edit(llama):
    reference = llama.capture(TEXTS, SITES)
    edited_reference = llama.run(TEXTS, edits=[Edit("resid_post.0", "zero")], sites=SITES)
    assert not torch.allclose(edited_reference["resid_post.1"], reference["resid_post.1"], equal_nan=True)
    results, errors, inside = [], [], threading.Event()
    release = threading.Event()
    edited = []

    def plain_worker():
        inside.wait(30)
        for _ in range(20):
            try:
                results.append(llama.capture(TEXTS, SITES))
            except BaseException as err:  # StopForward or anything else: the test reports it
                errors.append(err)

    def editing_worker():
        with llama.edit(Edit("resid_post.0", "zero")):
            inside.set()
            for _ in range(20):
                edited.append(llama.capture(TEXTS, SITES))
            release.wait(60)                                      # hold the edit until every plain thread is done

    threads = [threading.Thread(target=plain_worker) for _ in range(7)]
    editor = threading.Thread(target=editing_worker)
    editor.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    release.set()
    editor.join(300)
    assert errors == [], [type(e).__name__ for e in errors]
    assert not any(isinstance(e, StopForward) for e in errors)
    assert len(results) == 7 * 20 and len(edited) == 20
    for acts in results:
        for site in SITES:
            torch.testing.assert_close(acts[site], reference[site], rtol=0, atol=0, equal_nan=True)
    for acts in edited:                                           # the holder's own passes are edited
        for site in SITES:
            torch.testing.assert_close(acts[site], edited_reference[site], rtol=0, atol=0, equal_nan=True)
    # the edit's hooks are gone after its block: a capture now equals the reference again
    torch.testing.assert_close(llama.capture(TEXTS, SITES)["resid_post.1"], reference["resid_post.1"], rtol=0, atol=0,
                               equal_nan=True)


# ---------------------------------------------------------------------------------------------- hostile stores
IMG = "<img src=x onerror=window.__pwned=1>"
SCRIPT = "</script><script>window.__pwned=1</script>"
COMMENT = "<!--"
SVG = "\"'><svg onload=window.__pwned=1>"
PAYLOADS = (IMG, SCRIPT, COMMENT, SVG)


def rewrite_shard(folder: Path, shard: Path, change) -> None:
    """Rewrite one shard's tensors with `change(dict) -> dict`, and its sidecar's size and checksum to match."""
    tensors = change(load_file(str(shard)))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(shard))
    side = shard.with_suffix(".json")
    info = json.loads(side.read_text())
    info.update(sha256=sha256_file(shard), bytes=shard.stat().st_size)
    side.write_text(json.dumps(info))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def small_store(llama, tmp_path_factory):
    docs = [Document(d.id, d.text[:600]) for d in load_corpus(max_docs=4)]
    store = extract(llama, docs, ["mlp_post.1", "resid_post.2"], tmp_path_factory.mktemp("plain") / "store",
                    context=32, batch_size=4, dtype="float32", max_tokens=400, windows_per_shard=4, progress=False)
    write_index(store, settings=IndexSettings(k=4), progress=False)
    return store.folder


@pytest.fixture()
def copy_of(small_store, tmp_path):
    target = tmp_path / "store"
    shutil.copytree(small_store, target)
    return target


def test_a_sound_store_checks_clean(copy_of):
    assert ActivationStore(copy_of).check() == []


def test_a_sidecar_row_count_is_checked_against_the_shard(copy_of):
    side = sorted(copy_of.glob("shard-*.json"))[1]
    edit_json(side, lambda info: info.update(n_rows=10))
    store = ActivationStore(copy_of)
    assert store.check() == [f"{side.with_suffix('.safetensors').name}: mlp_post.1 has "
                             f"{load_file(str(side.with_suffix('.safetensors')))['mlp_post.1'].shape[0]} rows, its "
                             "sidecar says 10"]
    with pytest.raises(StoreError, match="its sidecar says 10"):
        write_index(store, copy_of / "ix", IndexSettings(k=2), progress=False)


def test_a_shard_of_another_dtype_or_width_is_refused(copy_of):
    shards = sorted(copy_of.glob("shard-*.safetensors"))
    rewrite_shard(copy_of, shards[1], lambda t: {**t, "mlp_post.1": t["mlp_post.1"].half()})
    rewrite_shard(copy_of, shards[2], lambda t: {**t, "resid_post.2": t["resid_post.2"][:, :-1]})
    store = ActivationStore(copy_of)
    problems = store.check()
    assert problems[0] == f"{shards[1].name}: mlp_post.1 is stored as F16, the store as F32"
    assert problems[1].startswith(f"{shards[2].name}: resid_post.2 has shape [") and len(problems) == 2
    with pytest.raises(StoreError, match="stored as F16"):
        store.read("mlp_post.1")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(n_shards=-1), "n_shards -1 is not a count"),
    (lambda m: m.update(format=99), "store format 99, newer than this lamina reads"),
    (lambda m: m["settings"].update(sites=["../../outside"]), "is not a plain name"),
    (lambda m: m["settings"].update(context="32"), "settings.context '32' is not a count"),
    (lambda m: m["settings"].update(storage_dtype="int8"), "storage_dtype 'int8'"),
    (lambda m: m.update(doc_ids=[1, 2]), "doc_ids is not a list"),
])
def test_a_hostile_manifest_is_refused_in_one_line(copy_of, change, message):
    edit_json(copy_of / "manifest.json", change)
    with pytest.raises(StoreError, match=message) as err:
        ActivationStore(copy_of)
    assert "\n" not in str(err.value)


def test_a_sidecar_naming_a_path_counts_as_bad(copy_of):
    side = sorted(copy_of.glob("shard-*.json"))[0]
    edit_json(side, lambda info: info.update(index="../../etc/passwd"))
    store = ActivationStore(copy_of)
    assert 0 not in store.shards and not store.complete
    assert f"{side.name}: sidecar unreadable or incomplete; --resume redoes its shard" in store.check()


def test_store_commands_refuse_in_one_line(copy_of, tmp_path):
    edit_json(copy_of / "manifest.json", lambda m: m.update(n_shards=-1))
    from typer.testing import CliRunner

    from lamina.cli import app

    for args in (["store", "check", str(copy_of)], ["store", "info", str(copy_of / "manifest.json")],
                 ["index", str(copy_of)], ["browse", str(copy_of)]):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 2, (args, out.output)
        assert len(out.output.strip().splitlines()) == 1 and "Traceback" not in out.output, out.output


def test_an_index_of_another_store_is_refused(copy_of, small_store, llama, tmp_path):
    other = extract(llama, [Document("x", "Another store, another text. " * 20)], ["mlp_post.1", "resid_post.2"],
                    tmp_path / "other", context=32, dtype="float32", progress=False)
    shutil.copytree(copy_of / "index", other.folder / "index")
    with pytest.raises(StoreError) as err:
        NeuronIndex(other.folder, store=ActivationStore(other.folder))
    assert str(err.value) == f"index built for another store: run `lamina index {other.folder}` again"
    from lamina.browse.data import BrowseData

    with pytest.raises(StoreError, match="index built for another store"):
        BrowseData(other.folder)
    # the same store with a sidecar's row count changed is another store too
    edit_json(copy_of / "index" / "index.json", lambda m: m.update(n_rows=m["n_rows"] + 1))
    with pytest.raises(StoreError, match="index built for another store"):
        NeuronIndex(copy_of, store=ActivationStore(copy_of))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(sites=["../manifest"]), "is not a plain name"),
    (lambda m: m["settings"].update(k=SCRIPT), "settings.k"),
    (lambda m: m.pop("store_key"), "does not record the store"),
])
def test_hostile_index_metadata_is_refused(copy_of, change, message):
    edit_json(copy_of / "index" / "index.json", change)
    with pytest.raises(StoreError, match=message):
        NeuronIndex(copy_of)


def _index_files(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def test_an_interrupted_reindex_leaves_the_old_index_whole(copy_of, monkeypatch):
    import lamina.index.build as build

    before = _index_files(copy_of / "index")
    real_save = build.save_file

    def save_then_die(tensors, path):
        real_save(tensors, path)
        raise KeyboardInterrupt  # killed after the first new site file

    monkeypatch.setattr(build, "save_file", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_index(ActivationStore(copy_of), settings=IndexSettings(k=2), progress=False)
    assert _index_files(copy_of / "index") == before
    assert sorted(p.name for p in copy_of.iterdir() if p.name.startswith(".index")) == []
    # a run killed -9 leaves its partial folder: the next index removes it, and replaces the old index whole
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    partial = copy_of / f".index.partial-{dead.pid}"
    partial.mkdir()
    (partial / "mlp_post.1.safetensors").write_bytes(b"half")
    monkeypatch.setattr(build, "save_file", real_save)
    write_index(ActivationStore(copy_of), settings=IndexSettings(k=2), progress=False)
    assert not partial.exists()
    index = NeuronIndex(copy_of, store=ActivationStore(copy_of))
    assert index.settings["k"] == 2 and set(_index_files(copy_of / "index")) == set(before)


def test_index_refuses_an_out_folder_that_is_not_an_index(small_store, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    from lamina.errors import InputError

    with pytest.raises(InputError, match="is not a neuron index"):
        write_index(ActivationStore(small_store), tmp_path / "mine", IndexSettings(k=2), progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ---------------------------------------------------------------------------------------------- hostile text
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def hostile(llama, tmp_path_factory):
    """A store whose every channel holds the payloads: a model folder whose tokenizer has them as added tokens,
    corpus text and document ids with them, site names made of them (shards, manifest and index), and a tune
    run (a labels table's results) with them as column names and values."""
    root = tmp_path_factory.mktemp("hostile")
    tokenizer = copy.deepcopy(llama.tokenizer)
    tokenizer.add_tokens([IMG, SVG])
    model = copy.deepcopy(llama.model)
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    lm = lamina.load(str(root / "model"))
    text = f"A cat {IMG} sat on {SCRIPT} the mat {COMMENT} while {SVG} a dog barked. "
    docs = [Document(SCRIPT, text * 6), Document(IMG, "The plain text goes on. " + text * 4),
            Document(COMMENT, text * 3)]
    store = extract(lm, docs, ["mlp_post.1", "resid_post.2"], root / "store", context=32, dtype="float32",
                    progress=False)
    names = {"mlp_post.1": f"{IMG}.1", "resid_post.2": f"{SVG}.2"}
    for shard in sorted(store.folder.glob("shard-*.safetensors")):
        rewrite_shard(store.folder, shard, lambda t: {names.get(k, k): v for k, v in t.items()})
    edit_json(store.folder / "manifest.json", lambda m: m["settings"].update(sites=list(names.values())))
    write_index(ActivationStore(store.folder), settings=IndexSettings(k=4), progress=False)
    tune = root / "tune"
    tune.mkdir()
    pd.DataFrame({"layer": [1, 1], "neuron": [0, 1], "name": [f"{IMG}.1:0", f"{IMG}.1:1"], "q": [0.01, 0.5],
                  SCRIPT: [1.5, -2.0], IMG: [SVG, SCRIPT]}).to_parquet(tune / "neurons.parquet")
    return {"store": store.folder, "tune": tune, "sites": list(names.values()), "lm": lm}


@contextlib.contextmanager
def serving(app):
    """`app` served by uvicorn on a free loopback port in a thread: yields the port."""
    uvicorn = pytest.importorskip("uvicorn", reason="install the browse extra: pip install 'lamina[browse]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def hostile_server(hostile):
    from lamina.browse.app import create_app

    app = create_app(hostile["store"], [hostile["tune"]])
    app.state.data._lm = hostile["lm"]                         # the model folder's model, loaded already
    with serving(app) as port:
        yield {"url": f"http://127.0.0.1:{port}", "port": port, "app": app}


def test_no_request_waits_behind_a_model_load(small_store, llama, monkeypatch):
    """8 threads x 50 requests answered while the model's load is held open (it cannot finish until they are)."""
    from lamina.browse.app import create_app

    started, gate = threading.Event(), threading.Event()

    def held_load(*args, **kwargs):
        started.set()
        gate.wait(600)
        return llama

    monkeypatch.setattr(lamina, "load", held_load)
    app = create_app(small_store)
    with serving(app) as port:
        host = f"127.0.0.1:{port}"
        status, _, body = _get(port, "/projection/mlp_post.1/3", host)
        assert status == 503 and "Loading the model random:llama" in body and started.wait(60)
        status, _, body = _get(port, "/neuron/mlp_post.1/3?text=hello", host)
        assert status == 200 and 'id="live-loading"' in body
        urls = ["/", "/api/overview", "/site/mlp_post.1", "/neuron/mlp_post.1/3", "/api/neuron/mlp_post.1/5",
                "/search?q=the&site=mlp_post.1", "/projection/mlp_post.1/3"]
        answers, errors = [], []

        def client(k: int):
            try:
                for i in range(50):
                    url = urls[(k + i) % len(urls)]
                    answers.append((url, _get(port, url, host)[0]))
            except Exception as err:
                errors.append(err)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert errors == [] and len(answers) == 400
        assert not gate.is_set()                                   # all 400 answered with the load still held
        assert {status for url, status in answers if not url.startswith("/projection")} == {200}
        assert {status for url, status in answers if url.startswith("/projection")} == {503}
        gate.set()
        for _ in range(600):                                       # the page is there once the load ends
            status, _, body = _get(port, "/projection/mlp_post.1/3", host)
            if status == 200:
                break
            time.sleep(0.05)
        assert status == 200 and "vocabulary projection" in body


def _get(port: int, path: str, host: str | None, method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest(method, path, skip_host=True)
    if host is not None:
        conn.putheader("Host", host)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read().decode()
    conn.close()
    return r.status, dict(r.getheaders()), body


def test_the_server_answers_only_to_its_own_name(hostile_server):
    port = hostile_server["port"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
        status, headers, _ = _get(port, "/api/overview", host)
        assert status == 200, host
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
    for host in (f"evil.example:{port}", "attacker.test", f"127.0.0.1.evil.example:{port}", ""):
        status, _, body = _get(port, "/api/overview", host)
        assert status == 421 and "answers only to" in body, host
    assert _get(port, "/api/overview", None)[0] == 400                  # no Host at all: refused by HTTP/1.1 itself
    assert _get(port, "/api/overview", f"127.0.0.1:{port}", "POST")[0] == 405
    # every page's inline script carries the response's own nonce, and no other
    status, headers, body = _get(port, "/", f"127.0.0.1:{port}")
    nonce = headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert body.count("<script") == body.count(f'nonce="{nonce}"') == 2
    assert _get(port, "/", f"127.0.0.1:{port}")[1]["content-security-policy"] != headers["content-security-policy"]


def test_browse_host_other_than_loopback_needs_allow_remote(small_store, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from lamina.cli import app

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    refused = CliRunner().invoke(app, ["browse", str(small_store), "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "--allow-remote" in refused.output and calls == []
    allowed = CliRunner().invoke(app, ["browse", str(small_store), "--host", "0.0.0.0", "--allow-remote"])
    assert allowed.exit_code == 0, allowed.output
    assert allowed.output.splitlines()[0].startswith("warning: serving on 0.0.0.0:8765: this store and its index "
                                                     "are readable by anyone who can reach that port")
    assert calls == [{"host": "0.0.0.0", "port": 8765, "log_level": "warning"}]
    CliRunner().invoke(app, ["browse", str(small_store)])
    assert calls[-1]["host"] == "127.0.0.1"


def test_no_payload_runs_or_changes_a_page(hostile, hostile_server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (browser: apt-get install chromium)")
    if CHROMIUM is None:
        pytest.skip("no chromium: apt-get install -y chromium (Debian), then pip install playwright")
    base = hostile_server["url"]
    img_site, svg_site = (quote(s, safe="") for s in hostile["sites"])
    top = hostile_server["app"].state.data.index.table
    best = int(top[top["site"] == hostile["sites"][0]].sort_values("max").iloc[-1]["neuron"])
    urls = {
        "overview (site names, doc ids, plot data)": "/",
        "site table (site name, tune columns)": f"/site/{img_site}?col=neuron&col=top_token&col=tune.{quote(SCRIPT)}"
                                                f"&col=tune.q",
        "site table, other site": f"/site/{svg_site}",
        "neuron page (tokens, doc ids, tune values)": f"/neuron/{img_site}/{best}",
        "neuron page with a typed text": f"/neuron/{img_site}/0?text={quote(IMG + SCRIPT + COMMENT + SVG)}",
        "vocabulary projection (added tokens)": f"/projection/{img_site}/0",
        "search for an added token": f"/search?q={quote(IMG)}&site={img_site}",
        "search for a script": f"/search?q={quote(SCRIPT)}&site={svg_site}",
        "search for a comment": f"/search?q={quote(COMMENT)}",
        "error page with a hostile site name": f"/site/{quote(SCRIPT, safe='')}",
        "error page with a hostile sort": f"/site/{img_site}?sort={quote(SVG)}",
        "error page with a hostile query": f"/search?q=x&site={quote(IMG + SCRIPT)}",
    }
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        for what, url in urls.items():
            page.goto(base + url)
            page.wait_for_load_state("load")
            assert page.evaluate("typeof window.__pwned") == "undefined", what
            assert page.locator("footer#footer").count() == 1, what               # the page's end is still there
            assert page.locator("nav a").count() == 2 and page.locator("h1").count() == 1, what
            assert page.evaluate("document.querySelectorAll('img, [onerror], [onload]').length") == 0, what
            stray = page.evaluate("[...document.querySelectorAll('svg')].filter(s => !s.closest('.plot')"
                                  " && !s.closest('#js-plotly-tester')).map(s => s.outerHTML.slice(0, 80))")
            assert stray == [], (what, stray)                          # svg only where Plotly draws
        page.goto(base + f"/neuron/{img_site}/{best}")
        page.wait_for_selector("#hist .main-svg")                     # the app's own script ran under the CSP
        texts = page.locator("#top .ex").first.locator("span.tok").evaluate_all("els => els.map(e => e.textContent)")
        api = json.loads(_get(hostile_server["port"], f"/api/neuron/{img_site}/{best}", "127.0.0.1")[2])
        shown = [t.replace(" ", "·").replace("\n", "↵") or "∅" for t in api["top_examples"][0]["tokens"]]
        assert texts == shown and any(t.startswith("·") for t in texts)  # text nodes as is, leading spaces shown
        page.goto(base + f"/neuron/{img_site}/0")                     # the neuron with tune rows
        assert SCRIPT in page.locator("#tuning").inner_text() and SVG in page.locator("#tuning").inner_text()
        tok = hostile["lm"].tokenizer
        assert [tok.decode([i]) for i in tok(f"a {IMG}")["input_ids"]][-1] == IMG
        page.goto(base + f"/search?q={quote(SVG)}&site={img_site}")        # an added token: one text node, as is
        assert page.locator("#looked .tokcell").inner_text() == '"' + SVG.replace(" ", "·") + '"' and page.locator("table").count() == 1
        page.goto(base + "/")
        page.wait_for_selector("#profile .main-svg")
        names = page.evaluate("document.getElementById('profile').data.map(t => t.name)")
        assert f"{IMG} rms" in names and f"{SVG} max" in names           # the plot's JSON arrived whole
        page.goto(base + f"/search?q={quote(COMMENT)}")
        assert page.locator("#looked").count() == 1
        browser.close()


def test_report_pages_escape_hostile_text():
    """The static report pages (lamina/report) through the same template engine: no payload becomes markup."""
    from html.parser import HTMLParser

    from lamina.report.html import page, section
    from lamina.report.html import text as paragraph
    from lamina.report.neuron_page import render_neuron_page

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

    example = {"value": 2.0, "tokens": [IMG, " " + SCRIPT, COMMENT, SVG], "activations": [2.0, 1.0, 0.5, -1.0],
               "focus": 0, "doc": SCRIPT, "position": 3, "token": IMG}
    neuron = {"neuron": f"mlp_post.1:{IMG}", "n_tokens": 4, "mean": 0.5, "min": -1.0, "max": 2.0, "top": [example],
              "argmax_tally": [{"token": SVG, "batches": 2}], "n_batches": 2,
              "quantiles": [{"q_lo": 0.0, "q_hi": 1.0, "lo": -1.0, "hi": 2.0, "examples": [example]}],
              "random": [example]}
    for text in (render_neuron_page(SCRIPT, neuron), page(SCRIPT + IMG, [section(SVG + COMMENT, paragraph("kept"))])):
        parser = Tags()
        parser.feed(text)
        tags = {t for t, _ in parser.tags}
        assert not tags & {"img", "script", "svg"} and all(not any(a.startswith("on") for a in attrs)
                                                           for _, attrs in parser.tags)
        assert text.rstrip().endswith("</html>") and "<!--" not in text
    assert "&lt;img src=x onerror=window.__pwned=1&gt;" in render_neuron_page("m", neuron)


def test_script_json_cannot_close_a_script_and_round_trips():
    from lamina.report.templating import script_json

    value = {"name": SCRIPT + COMMENT + "&\u2028\u2029" + IMG}
    text = str(script_json(value))
    assert not any(c in text for c in "<>&\u2028\u2029")
    assert text == ('{"name": "\\u003c/script\\u003e\\u003cscript\\u003ewindow.__pwned=1\\u003c/script\\u003e'
                    '\\u003c!--\\u0026\\u2028\\u2029\\u003cimg src=x onerror=window.__pwned=1\\u003e"}')
    assert json.loads(text) == value
