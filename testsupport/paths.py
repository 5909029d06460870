"""Where the repository, its sample policy and the optional real corpus lie."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"  # real third-party exports, beside the repository when present
SAMPLE_POLICY = REPO / "govrag" / "sample" / "policy.yaml"
