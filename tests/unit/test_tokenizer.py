"""The model's fast tokenizer as the ingest workers use it: ids, truncation, pickling, padding."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from embedding.base import Tokenizer
from embedding.calibration import generated_texts
from embedding.local import model_path
from embedding.tokenizer import DEFAULT_MAX_LENGTH, HFTokenizer, max_seq_length, pad_batch
from governance.errors import EmbedderUnavailable

CLS, SEP = 101, 102  # all-MiniLM-L6-v2's (bert-base-uncased) special token ids


@pytest.fixture(scope="module")
def tokenizer() -> HFTokenizer:
    return HFTokenizer.for_model(model_path())


def test_ids_are_those_of_the_transformers_tokenizer_the_server_uses(tokenizer: HFTokenizer) -> None:
    from transformers import AutoTokenizer

    texts = [*generated_texts(30, seed=11), "", "Ünïcödé   ÉCOLE\tcafé", "日本語のテキスト", "word " * 400]
    want = AutoTokenizer.from_pretrained(model_path())(texts, truncation=True, max_length=256)["input_ids"]
    got = tokenizer(texts)
    assert len(got) == len(texts)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.int64 and g.ndim == 1
        np.testing.assert_array_equal(g, np.asarray(w))


def test_ids_carry_special_tokens_and_no_padding(tokenizer: HFTokenizer) -> None:
    short, empty = tokenizer(["hello world", ""])
    assert short.tolist() == [CLS, 7592, 2088, SEP]
    assert empty.tolist() == [CLS, SEP]


def test_long_text_is_truncated_to_the_models_max_length_not_the_files(tokenizer: HFTokenizer) -> None:
    # tokenizer.json itself says truncate at 128 and pad to 128; the model reads 256 tokens
    (ids,) = tokenizer(["lorem ipsum dolor " * 300])
    assert tokenizer.max_length == 256
    assert len(ids) == 256 and ids[0] == CLS and ids[-1] == SEP


def test_max_length_comes_from_sentence_bert_config(tmp_path: Path) -> None:
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    assert max_seq_length(tmp_path) == 64
    assert max_seq_length(tmp_path / "absent") == DEFAULT_MAX_LENGTH


def test_pickles_as_its_paths_only_before_and_after_use(tokenizer: HFTokenizer) -> None:
    before = pickle.dumps(tokenizer)
    tokenizer(["warm it up"])
    after = pickle.dumps(tokenizer)
    assert before == after and len(after) < 1024  # the loaded Rust tokenizer never travels
    copy = pickle.loads(after)
    assert copy == tokenizer
    np.testing.assert_array_equal(copy(["same ids"])[0], tokenizer(["same ids"])[0])


def test_satisfies_the_tokenizer_protocol(tokenizer: HFTokenizer) -> None:
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer([]) == []


def test_missing_tokenizer_file_is_reported_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="tokenizer.json") as err:
        HFTokenizer(str(tmp_path))(["text"])
    assert "nothing is downloaded" in (err.value.hint or "")


def test_pad_batch_right_pads_with_a_mask_of_the_real_tokens() -> None:
    ids, mask = pad_batch([np.array([101, 5, 102]), np.array([101, 102])])
    assert ids.dtype == mask.dtype == np.int64
    assert ids.tolist() == [[101, 5, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
