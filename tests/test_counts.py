"""Honest counts: every verb and every store records what it read (documents, windows, tokens), not the corpus's
size, and a result with fewer items than asked says how many and why.

The corpus is built so the answer is known: ten documents of known token lengths, one window each, and a
token budget that the first four documents reach."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lamina.analyses.neurons.top_examples import top_examples
from lamina.analyses.profile.laminar import profile
from lamina.cli import app
from lamina.data.corpus import Document
from lamina.extract import extract
from lamina.store.manifest import stored_counts

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(llama, tmp_path_factory):
    """(documents, the token budget, tokens of the first four documents, the corpus as a JSONL file)."""
    words = ["cat", "tree", "river", "stone", "cloud", "lamp", "horse", "bread", "music", "paper"]
    docs = [Document(f"d{i}", " ".join([w] * (10 + i)) + ".") for i, w in enumerate(words)]
    lengths = [len(llama.tokenizer(d.text)["input_ids"]) for d in docs]          # with the BOS, as windows read
    budget = sum(lengths[:3]) + 1                                                 # reached by the fourth document
    path = tmp_path_factory.mktemp("corpus") / "c.jsonl"
    path.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs))
    return docs, budget, sum(lengths[:4]), path


def test_store_manifest_counts_what_was_read(llama, corpus, tmp_path):
    docs, budget, tokens, _ = corpus
    store = extract(llama, docs, ["mlp_post.1"], tmp_path / "s", context=64, max_tokens=budget, dtype="float32",
                    progress=False)
    assert store.manifest["counts"] == {"documents_read": 4, "windows": 4, "tokens_read": tokens,
                                        "documents_in_corpus": 10}
    assert store.n_rows == tokens
    info = runner.invoke(app, ["store", "info", str(tmp_path / "s")])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["doc_ids"] == "10 documents in the corpus, 4 read"


def test_an_old_manifest_without_counts_stays_readable():
    old = {"n_windows": 7, "doc_ids": ["a", "b", "c"]}
    assert stored_counts(old) == {"documents_read": None, "windows": 7, "tokens_read": None, "documents_in_corpus": 3}


def test_profile_settings_count_the_documents_read(llama, corpus):
    docs, budget, tokens, _ = corpus
    result = profile(llama, docs, kind="resid_post", context=64, max_tokens=budget, progress=False)
    s = result.settings
    assert (s["n_docs"], s["n_docs_corpus"], s["n_tokens_read"], s["n_windows"]) == (4, 10, tokens, 4)


def test_top_examples_says_how_many_of_k_and_why(llama, corpus):
    docs, budget, tokens, _ = corpus
    r = top_examples(llama, ["mlp_post.1:3"], docs, k=10, context=64, max_tokens=budget, progress=False)
    n = r.neurons["mlp_post.1:3"]
    assert len(n["top"]) == 4 and r.settings["n_docs"] == 4 and r.settings["n_docs_corpus"] == 10
    want = f"mlp_post.1:3: 4 of 10: only 4 documents in the first {tokens:,} tokens (top examples are one per document)"
    assert n["short"] == want and r.settings["notes"] == [want]


def test_top_examples_cli_prints_the_shortfall_on_stderr_and_in_the_json(corpus, tmp_path):
    _, budget, tokens, path = corpus
    result = runner.invoke(app, ["top-examples", "--neuron", "mlp_post.1:3", "--model", "random:llama", "--corpus",
                                 str(path), "--max-tokens", str(budget), "-k", "10", "--context", "64", "--out",
                                 str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert "4 of 10: only 4 documents" in result.stderr
    j = json.loads(result.stdout[result.stdout.index("{"):])
    assert j["settings"]["notes"][0].endswith(f"only 4 documents in the first {tokens:,} tokens (top examples are "
                                              "one per document)")


def test_tune_settings_count_the_texts_and_tokens_read(llama, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    words = (["one", "two", "three", "four", "five", "six"], ["table", "chair", "river", "garden", "window", "paper"])
    a.write_text("\n".join(words[0]) + "\n")
    b.write_text("\n".join(words[1]) + "\n")
    result = runner.invoke(app, ["tune", "-c", "category", "--words-a", str(a), "--words-b", str(b), "--model",
                                 "random:llama", "--layers", "1", "--permutations", "0", "--reference-permutations",
                                 "0", "--no-probes", "--cv", "2", "--json"])
    assert result.exit_code == 0, result.output
    read = json.loads(result.stdout[result.stdout.index("{"):])["settings"]["read"]
    texts = [f"The next word is {w}." for w in words[0] + words[1]]
    assert read == {"texts": 12, "samples": 12, "documents": 12,
                    "tokens": sum(len(llama.tokenizer(t)["input_ids"]) for t in texts)}


def test_the_browser_overview_counts_the_documents_read(llama, corpus, tmp_path):
    """The overview says 4 documents read of the corpus's 10, not the corpus's size."""
    from lamina.browse.data import BrowseData
    from lamina.index.build import IndexSettings, write_index

    docs, budget, tokens, _ = corpus
    store = extract(llama, docs, ["mlp_post.1"], tmp_path / "s", context=64, max_tokens=budget, dtype="float32",
                    progress=False)
    write_index(store, settings=IndexSettings(k=2), progress=False)
    overview = BrowseData(tmp_path / "s").overview()
    assert (overview["n_tokens"], overview["n_docs"], overview["n_docs_corpus"]) == (tokens, 4, 10)
