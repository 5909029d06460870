"""The real all-MiniLM-L6-v2 quantized to NVFP4: layout on disk, size, and embedding quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from embedding.calibration import generated_texts
from embedding.local import LocalEmbedder, model_path
from embedding.quantize import DEFAULT_KEEP, DEFAULT_METHOD, Nvfp4Embedder, QuantizeReport, quantize_model
from embedding.tokenizer import HFTokenizer
from testsupport.paths import CORPUS, REPO


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, QuantizeReport]:
    out = tmp_path_factory.mktemp("nvfp4")
    return out, quantize_model(out)  # the default recipe: gptq + DEFAULT_KEEP, ~30 s on 2 cores


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
    # 6 layers x 6 Linear + pooler, less the ones kept unquantized
    assert DEFAULT_METHOD == "gptq" and len(DEFAULT_KEEP) == 7
    assert report.quantized_tensors == 37 - len(DEFAULT_KEEP)
    assert qc["govrag_method"] == DEFAULT_METHOD


def test_kept_layers_are_dense_bf16_and_listed(quantized: tuple[Path, QuantizeReport]) -> None:
    out, report = quantized
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["ignore"] == list(DEFAULT_KEEP) == list(report.kept_linear)
    assert qc["govrag_ignored_dtype"] == "bfloat16"
    kept_bytes = 0
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        for module in DEFAULT_KEEP:
            assert f"{module}.weight" in keys and f"{module}.weight_packed" not in keys
            sl = f.get_slice(f"{module}.weight")
            assert sl.get_dtype() == "BF16"
            rows, cols = sl.get_shape()
            kept_bytes += rows * cols * 2
    assert kept_bytes == report.kept_linear_bytes == qc["govrag_ignored_bytes"]


def test_keep_nothing_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep"):
        quantize_model(tmp_path / "x", method="rtn", keep=["encoder.layer.0.nope"])
    with pytest.raises(ValueError, match="method"):
        quantize_model(tmp_path / "y", method="awq")
    report = quantize_model(tmp_path / "z", method="rtn", keep=())
    assert report.quantized_tensors == 37 and report.kept_linear_bytes == 0
    qc = json.loads((tmp_path / "z" / "config.json").read_text())["quantization_config"]
    assert qc["ignore"] == []


def test_tensors_left_unquantized_are_stored_bf16(quantized: tuple[Path, QuantizeReport]) -> None:
    out, report = quantized
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        for name in (
            "embeddings.word_embeddings.weight",
            "embeddings.position_embeddings.weight",
            "encoder.layer.0.output.LayerNorm.weight",
            "encoder.layer.0.attention.self.query.bias",
        ):
            assert f.get_slice(name).get_dtype() == "BF16", name
        names = f.keys()  # safe_open is not iterable
        fp32 = [k for k in names if f.get_slice(k).get_dtype() == "F32" and not k.endswith("weight_global_scale")]
    assert fp32 == []  # FP32 is left for the per-tensor global scales only
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["govrag_dense_dtype"] == "bfloat16"
    # 56.6 MB when these tensors were FP32 (the 30522x384 word-embedding table alone was 46.9 MB)
    assert report.file_bytes_after < 34e6, report.file_bytes_after


def write_fp32_checkpoint(src: Path, dst: Path) -> None:
    """The same weights in the layout earlier versions wrote: unquantized tensors in FP32."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    tensors = load_file(str(src / "model.safetensors"))
    kept = {f"{m}.weight" for m in DEFAULT_KEEP}
    widened = {k: v.float() if v.dtype == torch.bfloat16 and k not in kept else v for k, v in tensors.items()}
    save_file(widened, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    del config["quantization_config"]["govrag_dense_dtype"]
    (dst / "config.json").write_text(json.dumps(config))


def test_checkpoint_of_earlier_versions_with_fp32_tables_still_loads(
    quantized: tuple[Path, QuantizeReport], tmp_path: Path
) -> None:
    out, _ = quantized
    old = tmp_path / "fp32-tables"
    write_fp32_checkpoint(out, old)
    assert (old / "model.safetensors").stat().st_size > 55e6
    texts = generated_texts(8, seed=31)
    # BF16 -> FP32 is exact, so the same numbers load either way: identical vectors
    np.testing.assert_allclose(Nvfp4Embedder(old).embed(texts), Nvfp4Embedder(out).embed(texts), atol=1e-6)


def test_quantized_dir_carries_the_tokenizer_the_client_uses(quantized: tuple[Path, QuantizeReport]) -> None:
    out, _ = quantized
    texts = [*generated_texts(10, seed=4), "word " * 400]
    served, client = HFTokenizer.for_model(out), HFTokenizer.for_model(model_path())
    assert served.max_length == client.max_length == 256
    for a, b in zip(served(texts), client(texts), strict=True):
        np.testing.assert_array_equal(a, b)


def test_weight_bytes_smaller(quantized: tuple[Path, QuantizeReport]) -> None:
    _, report = quantized
    # NVFP4 part: 4 bits + one FP8 per 16 = 4.5 bits per weight vs 32 (about 7.1x smaller);
    # with the 7 kept BF16 layers (3.8 MB) all Linear weights are 8.8 MB vs 43.1 MB, 4.9x.
    assert report.linear_bytes_after * 4.5 < report.linear_bytes_before
    nvfp4_part = report.linear_bytes_after - report.kept_linear_bytes
    fp32_part = report.linear_bytes_before - report.kept_linear_bytes * 2  # kept: BF16 = FP32 / 2
    assert nvfp4_part * 7 < fp32_part
    assert report.file_bytes_after < report.file_bytes_before


def test_cosine_vs_fp32(quantized: tuple[Path, QuantizeReport]) -> None:
    out, _ = quantized
    texts = generated_texts(40, seed=2024)  # the calibration's generated part used seed 1
    nv = Nvfp4Embedder(out).embed(texts)
    ref = LocalEmbedder().embed(texts)
    assert nv.shape == (40, 384) and nv.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(nv, axis=1), 1.0, atol=1e-5)
    cos = (nv * ref).sum(axis=1)
    # Measured with the default recipe: 0.9965 mean / 0.9948 min (rtn on all layers: 0.976 /
    # 0.964). These texts share templates with part of the calibration set; the corpus test
    # below is the out-of-distribution check.
    assert cos.mean() >= 0.993, f"mean cosine {cos.mean():.4f}"
    assert cos.min() >= 0.985, f"min cosine {cos.min():.4f}"


@pytest.mark.skipif(not (CORPUS / "slack").is_dir(), reason=f"no corpus at {CORPUS}")
def test_cosine_vs_fp32_on_real_messages(quantized: tuple[Path, QuantizeReport]) -> None:
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from nvfp4_report import slack_texts

    out, _ = quantized
    texts = slack_texts(CORPUS / "slack")[:60]  # real chat text, never used for calibration
    cos = (Nvfp4Embedder(out).embed(texts) * LocalEmbedder().embed(texts)).sum(axis=1)
    # Measured: 0.9928 mean / 0.9887 min on these 60 (0.9919 mean over all 179 messages;
    # rtn on all layers: 0.966 mean).
    assert cos.mean() >= 0.99, f"mean cosine {cos.mean():.4f}"
    assert cos.min() >= 0.975, f"min cosine {cos.min():.4f}"


def test_empty_input(quantized: tuple[Path, QuantizeReport]) -> None:
    out, _ = quantized
    assert Nvfp4Embedder(out).embed([]).shape == (0, 384)
