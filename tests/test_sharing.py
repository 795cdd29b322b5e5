"""Safe to share: threads on one model, hostile stores and indexes, the Host check, hostile text in a real browser."""
import threading

import torch

from lamina.capture import StopForward
from lamina.edits import Edit

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
