"""The NumPy forward pass of all-MiniLM-L6-v2 that ``govrag search`` uses gives the vectors
the torch model gives, for every kind of text (the command itself finds what ingest wrote:
tests/system/test_quick_start_embedder.py)."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = [
    "revenue",
    "What was the Q3 revenue of the finance team, and who approved the 2027 budget?",
    "日本語のテキストと English mixed — naïve café Ünïcödé",
    "word " * 700,  # longer than the model's 256 tokens: truncated the same way
    "",
    "   \t\n ",
    "a]b\" or true or \"x\\ 'quote' \U0001f600",
    "12345 67890 3.14159 ---- ////",
]


@pytest.fixture(scope="module")
def quick():
    from embedding.numpy_minilm import NumpyMiniLM

    return NumpyMiniLM()


def test_quick_start_vectors_match_the_torch_model(quick, embedder) -> None:
    ours, theirs = quick.embed(TEXTS), embedder.embed(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.99999, dict(zip(TEXTS, cosines))
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_quick_start_names_the_same_model(quick, embedder) -> None:
    assert quick.name == embedder.name and quick.dim == embedder.dim
