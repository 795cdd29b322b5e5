"""Token labels with the real GPT-2 tokenizer and spaCy; word alignment and pooling on hand-made data."""
import copy

import numpy as np
import pytest
import torch

from lamina.data.align import pool_positions, word_spans
from lamina.data.labels import add_log_frequency, label_tokens, split_report, token_frequency
from lamina.models.tokenizers import gpt2_tokenizer

TEXT = "The cat didn't sit on Paris's unbelievable mat."
TWO = "The dog barked at Zanzibar. Then it slept without a sound."


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def bos_tok():
    """GPT-2 copy whose Llama-style post-processor prepends BOS by default (the cached one is untouched)."""
    from tokenizers.processors import TemplateProcessing

    t = copy.deepcopy(gpt2_tokenizer())
    bos = t.eos_token  # GPT-2's only special token, used as BOS like the original model does
    t.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, t.convert_tokens_to_ids(bos))]
    )
    return t


@pytest.fixture(scope="module")
def df(tok):
    return label_tokens([TEXT, TWO], tok)


def row(df, doc, token):
    hits = df[(df["doc"] == doc) & (df["token"] == token)]
    assert len(hits) == 1, (token, hits)
    return hits.iloc[0]


def test_token_ids_and_positions(df, tok):
    d0 = df[df["doc"] == 0]
    assert row(df, 0, "The")["token_id"] == 464 and row(df, 0, " cat")["token_id"] == 3797
    ids = tok(TEXT)["input_ids"]
    assert list(d0["position"]) == list(range(len(ids)))
    assert list(d0["token_id"]) == [ids[p] for p in d0["position"]]
    assert row(df, 0, " cat")["char_len"] == 3 and row(df, 0, " cat")["word"] == "cat"


def test_word_labels(df):
    neg = df[(df["doc"] == 0) & (df["word"] == "n't")]
    assert len(neg) >= 1 and neg["is_negation"].all()
    assert not row(df, 0, " cat")["is_negation"]
    paris = row(df, 0, " Paris")
    assert paris["pos"] == "PROPN" and paris["is_propn"] and paris["is_entity"] and paris["ent_type"] == "GPE"
    assert paris["is_capitalized"] and not row(df, 0, " cat")["is_capitalized"]
    cat, sit = row(df, 0, " cat"), row(df, 0, " sit")
    assert cat["is_noun"] and cat["pos"] == "NOUN" and sit["is_verb"] and not sit["is_noun"]
    did = df[(df["doc"] == 0) & (df["word"] == "did")]
    assert not did["is_verb"].any()  # AUX is not VERB
    assert row(df, 1, " without")["is_negation"]


def test_multi_token_word_flags(df):
    w = df[(df["doc"] == 0) & (df["word"] == "unbelievable")]
    assert len(w) >= 1 and (w["n_subtokens"] == len(w)).all()
    assert list(w["is_word_first"]) == [True] + [False] * (len(w) - 1)
    assert list(w["is_word_last"]) == [False] * (len(w) - 1) + [True]
    assert w["word_index"].nunique() == 1


def test_sentence_starts(df):
    d1 = df[df["doc"] == 1]
    assert list(d1.loc[d1["is_sentence_start"], "word"]) == ["The", "Then"]


def test_split_word_in_text(df):
    z = df[(df["doc"] == 1) & (df["word"] == "Zanzibar")]  # GPT-2: " Z" "anz" "ib" "ar"
    assert list(z["token"]) == [" Z", "anz", "ib", "ar"] and (z["n_subtokens"] == 4).all()
    assert list(z["is_word_first"]) == [True, False, False, False]
    assert list(z["is_word_last"]) == [False, False, False, True]
    vals = np.arange(len(df[df["doc"] == 1]), dtype=float)[:, None]  # row i is position i (no specials)
    d1 = df[df["doc"] == 1]
    words = d1["word_index"].to_numpy()
    mine = words >= 0                                                # tokens that belong to a word
    pooled = pool_positions(torch.tensor(vals[mine], dtype=torch.float32), torch.as_tensor(words[mine]),
                            int(words.max()) + 1)
    w = z["word_index"].iloc[0]
    assert pooled[w, 0] == z["position"].mean() == 1.5 + z["position"].iloc[0]


def test_bos_tokenizer_positions(bos_tok, df):
    ids = bos_tok(TEXT)["input_ids"]
    assert ids[0] == bos_tok.eos_token_id and ids[1:] == gpt2_tokenizer()(TEXT)["input_ids"]
    b = label_tokens([TEXT], bos_tok)
    assert list(b["position"]) == list(range(1, len(ids)))  # BOS keeps position 0 but gets no row
    assert list(b["token_id"]) == [ids[p] for p in b["position"]]
    plain = df[df["doc"] == 0].reset_index(drop=True)
    assert list(b["word"]) == list(plain["word"]) and list(b["position"]) == list(plain["position"] + 1)


def test_max_length_truncates(tok):
    t = label_tokens([TEXT], tok, max_length=4)
    assert list(t["position"]) == [0, 1, 2, 3]


def test_split_report(tok):
    rep = split_report(["cat", "unbelievable", "Paris"], tok)
    assert "cat" not in set(rep["word"])
    assert ("unbelievable", False) in set(zip(rep["word"], rep["leading_space"]))
    r = rep[rep["word"] == "unbelievable"].iloc[0]
    assert r["n_tokens"] == len(r["tokens"]) > 1 and "".join(r["tokens"]).strip() == "unbelievable"


def test_log_frequency(df):
    counts = token_frequency([df["token_id"].to_numpy(), np.array([464, 464])])
    assert counts[464] == 4  # "The" twice in the texts, twice extra
    out = add_log_frequency(df, counts)
    assert np.isclose(row(out, 0, "The")["log_freq"], np.log(5))
    assert "log_freq" not in df.columns


def test_word_spans_leading_space_and_straddle():
    text = "a  cat didn't"
    words = [(0, 1), (1, 1), (3, 6), (7, 10), (10, 13)]  # a, SPACE (emptied), cat, did, n't
    offsets = [(0, 0), (0, 1), (1, 2), (2, 6), (6, 11), (11, 13)]  # BOS, "a", " ", " cat", " didn", "'t"
    assert text[2:6] == " cat"
    assert list(word_spans(offsets, words)) == [-1, 0, -1, 2, 3, 4]


def test_pool_positions():
    """The mean of each sample's read rows; one read keeps its value bit for bit; no read gives NaN."""
    vals = torch.tensor([[0.1, 1.0], [0.2, 3.0], [0.3, 5.0], [7.25, -1.0]])   # one row per read token
    owner = torch.tensor([0, 0, 0, 2])                                           # sample 1 reads nothing
    pooled = pool_positions(vals, owner, 4)
    assert pooled.shape == (4, 2) and pooled.dtype == torch.float32
    torch.testing.assert_close(pooled[0], torch.tensor([0.2, 3.0]))
    assert torch.equal(pooled[2], vals[3]) and pooled[1].isnan().all() and pooled[3].isnan().all()


# --------------------------------------------------------------------------- user tables (--contrast labels --table)
def _table_labels(tok, tmp_path, frame, column, sep=","):
    from lamina.analyses.tuning import contrasts as C

    path = tmp_path / ("t.tsv" if sep == "\t" else "t.csv")
    frame.to_csv(path, index=False, sep=sep)
    return C.labels(tok, label_column=column, table=path, counts=np.ones(len(tok)))


def test_a_table_with_empty_text_cells_is_refused_with_their_rows(tok, tmp_path):
    import pandas as pd

    from lamina.errors import InputError

    frame = pd.DataFrame({"text": ["good film", None, "great day", "   ", "awful day"], "y": [1, 0, 1, 0, 0]})
    with pytest.raises(InputError, match=r"empty 'text' in row\(s\) 2, 4 \(data rows"):
        _table_labels(tok, tmp_path, frame, "y")


def test_empty_labels_are_left_out_and_counted(tok, tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"text": ["good film", "bad film", "great day", "awful day", "a day", "one film"],
                          "y": ["pos", "neg", None, "pos", "", "neg"]})
    s = _table_labels(tok, tmp_path, frame, "y")
    assert s.rows["text"].tolist() == [0, 1, 3, 5] and s.group_sizes() == {"pos": 2, "neg": 2}
    assert "2 sample(s) with an empty 'y' left out (--table rows 3, 5)" in s.notes
    valued = _table_labels(tok, tmp_path, frame, "y=pos")            # COLUMN=VALUE: empty is not "not pos"
    assert valued.group_sizes() == {"pos": 2, "not pos": 2}
    assert "2 sample(s) with an empty 'y' left out (--table rows 3, 5)" in valued.notes


@pytest.mark.parametrize("column", ["my label", "1st", "class", "text-kind", "ümlaut"])
def test_any_column_name_works(tok, tmp_path, column):
    import pandas as pd

    frame = pd.DataFrame({"text": ["good film", "bad film", "great day", "awful day"], column: [1, 0, 1, 0]})
    s = _table_labels(tok, tmp_path, frame, column, sep="\t")
    assert s.group_sizes() == {column: 2, f"not {column}": 2} and s.label_name == column
    assert s.rows["label"].tolist() == [True, False, True, False]


def test_a_missing_column_is_named_in_quotes(tok, tmp_path):
    import pandas as pd

    from lamina.errors import InputError

    frame = pd.DataFrame({"text": ["a b", "c d"], "my label": [1, 0]})
    with pytest.raises(InputError, match="unknown label column 'my labels'; --table t.csv has text, my label"):
        _table_labels(tok, tmp_path, frame, "my labels")
