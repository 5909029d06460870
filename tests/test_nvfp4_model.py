"""The real all-MiniLM-L6-v2 quantized to NVFP4: layout on disk, size, and embedding quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from ingest.embed.calibration import generated_texts
from ingest.embed.local import LocalEmbedder
from ingest.embed.quantize import Nvfp4Embedder, QuantizeReport, quantize_model


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, QuantizeReport]:
    out = tmp_path_factory.mktemp("nvfp4")
    return out, quantize_model(out)


def test_layout_uses_compressed_tensors_names(quantized: tuple[Path, QuantizeReport]) -> None:
    out, report = quantized
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        prefix = "encoder.layer.0.attention.self.query"
        assert {f"{prefix}.weight_packed", f"{prefix}.weight_scale", f"{prefix}.weight_global_scale"} <= keys
        assert f"{prefix}.weight" not in keys
        assert f.get_slice(f"{prefix}.weight_packed").get_dtype() == "U8"
        assert f.get_slice(f"{prefix}.weight_scale").get_dtype() == "F8_E4M3"
        assert f.get_slice(f"{prefix}.weight_packed").get_shape() == [384, 192]
        assert f.get_slice(f"{prefix}.weight_scale").get_shape() == [384, 24]
        # embeddings and LayerNorms are not quantized
        assert "embeddings.word_embeddings.weight" in keys
        assert "encoder.layer.0.output.LayerNorm.weight" in keys
    config = json.loads((out / "config.json").read_text())
    qc = config["quantization_config"]
    assert qc["format"] == "nvfp4-pack-quantized"
    assert qc["config_groups"]["group_0"]["weights"]["group_size"] == 16
    assert qc["config_groups"]["group_0"]["input_activations"] is None
    for name in ("tokenizer.json", "vocab.txt", "modules.json"):
        assert (out / name).exists()
    assert report.quantized_tensors == 37  # 6 layers x 6 Linear + pooler


def test_weight_bytes_smaller(quantized: tuple[Path, QuantizeReport]) -> None:
    _, report = quantized
    # 4 bits + one FP8 per 16 = 4.5 bits per weight vs 32: about 7.1x smaller
    assert report.linear_bytes_after * 7 < report.linear_bytes_before
    assert report.file_bytes_after < report.file_bytes_before


def test_cosine_vs_fp32(quantized: tuple[Path, QuantizeReport]) -> None:
    out, _ = quantized
    texts = generated_texts(40, seed=2024)  # calibration used seed 1
    nv = Nvfp4Embedder(out).embed(texts)
    ref = LocalEmbedder().embed(texts)
    assert nv.shape == (40, 384) and nv.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(nv, axis=1), 1.0, atol=1e-5)
    cos = (nv * ref).sum(axis=1)
    # Measured: rtn 0.976 mean / 0.964 min here (gptq 0.995, but see docs/nvfp4.md: that gain
    # does not carry to real corpus text). The 0.99 goal is not met by weight-only NVFP4 on this
    # 384-wide model; the bounds below catch regressions in the format or the loader.
    assert cos.mean() >= 0.97, f"mean cosine {cos.mean():.4f}"
    assert cos.min() >= 0.94, f"min cosine {cos.min():.4f}"


def test_empty_input(quantized: tuple[Path, QuantizeReport]) -> None:
    out, _ = quantized
    assert Nvfp4Embedder(out).embed([]).shape == (0, 384)
