"""Windows and batches: every token counted exactly once, first-token policy, padding masked."""

import pytest

from lamina.data.corpus import builtin_corpus, fingerprint, load_corpus
from lamina.data.windows import batches, make_windows, split_row_id
from lamina.errors import InputError


@pytest.mark.parametrize("context,stride", [(4, 4), (4, 2), (5, 3), (8, 1)])
def test_each_token_counted_once(context, stride):
    docs = [list(range(100, 123)), list(range(7)), list(range(200, 201))]
    windows = make_windows(docs, context, stride)
    counted = []
    for batch in batches(windows, 3, pad_id=0):
        for row in batch.row_ids[batch.count].tolist():
            counted.append(split_row_id(row))
        assert (batch.input_ids[batch.attention_mask == 0] == 0).all()
    expected = [(d, p) for d, ids in enumerate(docs) for p in range(len(ids))]
    assert sorted(counted) == expected  # no token lost, none twice


def test_skip_first_leaves_position_zero_out():
    windows = make_windows([list(range(10))], context=4)
    kept = [split_row_id(r)[1] for b in batches(windows, 8, 0, skip_first=True) for r in b.row_ids[b.count].tolist()]
    assert kept == [1, 2, 3, 5, 6, 7, 9]


def test_packing_fills_windows():
    windows = make_windows([[1, 2, 3], [4, 5]], context=3, pack=True, separator=0)
    assert [w.ids for w in windows] == [[1, 2, 3], [0, 4, 5], [0]]


def test_bad_stride():
    with pytest.raises(InputError, match="stride"):
        make_windows([[1, 2, 3]], context=4, stride=5)


def test_builtin_corpus_size_and_fingerprint():
    docs = builtin_corpus()
    assert len(docs) >= 30
    assert sum(len(d.text.split()) for d in docs) >= 50_000
    assert fingerprint(docs) == fingerprint(load_corpus("builtin"))
    assert fingerprint(docs) != fingerprint(docs[1:])


def test_corpus_files(tmp_path):
    (tmp_path / "a.txt").write_text("One document.\n\nTwo paragraphs.")
    (tmp_path / "b.jsonl").write_text('{"body": "first"}\n\n{"body": "second"}\n')
    docs = load_corpus(tmp_path, text_field="body")
    assert [d.text for d in docs] == ["One document.\n\nTwo paragraphs.", "first", "second"]
    with pytest.raises(InputError, match="no field 'text'"):
        load_corpus(tmp_path / "b.jsonl")
    with pytest.raises(InputError, match="does not exist"):
        load_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "e.txt").write_text("   \n")
    with pytest.raises(InputError, match="no non-empty"):
        load_corpus(tmp_path / "empty")
