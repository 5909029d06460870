"""The embedder settings reach the real local model (identity and policy parsing: tests/unit)."""

from __future__ import annotations


def test_torch_threads_setting_reaches_the_local_embedder(monkeypatch):
    import torch

    from embedding import make_embedder
    from governance.settings import Settings

    before = torch.get_num_threads()
    try:
        make_embedder(Settings(torch_threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
