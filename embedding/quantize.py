"""Quantize all-MiniLM-L6-v2 to NVFP4 (weights only) and run the result in process.

The output directory is self-contained: ``model.safetensors`` in the compressed-tensors
``nvfp4-pack-quantized`` layout, ``config.json`` with a ``quantization_config``, and the
tokenizer / sentence-transformers files copied from the base model. Only ``nn.Linear``
weights are quantized: embeddings, LayerNorms and biases are not (the word embeddings are a
lookup table, not a GEMM; the rest is small and sensitive) and are stored in BF16
(:data:`DENSE_DTYPE`): the FP32 word-embedding table alone was 47 of the file's 57 MB, and
BF16 halves it at no measurable cost in embedding cosine (docs/nvfp4.md). Loading converts
them back to the compute dtype; checkpoints written before, with FP32 tensors, load as they
are. By
default a few of the most sensitive Linear layers stay BF16 too (:data:`DEFAULT_KEEP`, listed
in the config's ``ignore``), and the rest are quantized with GPTQ calibrated on generic
text: together that takes real-corpus embeddings from 0.967 to over 0.99 mean cosine vs
FP32 (docs/nvfp4.md).

NVFP4 here is a *storage* format: weights are dequantized at load (BF16 on GPU, FP32 on
CPU) and the matmuls run in that precision. Native FP4 GEMMs need sm_100+ (Blackwell);
Hopper (H100/H200) and CPUs have no FP4 arithmetic.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from embedding.calibration import generic_texts
from embedding.local import DIM, MODEL_NAME, model_path
from embedding.nvfp4 import (
    GROUP_SIZE,
    load_nvfp4_state_dict,
    quantize_nvfp4,
    quantize_nvfp4_gptq,
)
from governance.errors import EmbedderUnavailable

QUANT_FORMAT = "nvfp4-pack-quantized"
#: ``gptq``: GPTQ error feedback + searched block scales, calibrated on generic text
#: (:func:`embedding.calibration.generic_texts`); ``mse``: searched block scales, no
#: calibration; ``rtn``: amax block scales, round to nearest (the reference recipe).
METHODS = ("gptq", "mse", "rtn")
DEFAULT_METHOD = "gptq"
#: Linear layers left unquantized (stored BF16) by default, 7 of 37. Chosen from the per-layer
#: sensitivity (cosine gained by leaving one layer unquantized, measured on held-out text:
#: Confluence pages + generated text, not the evaluation sets; docs/nvfp4.md): the five
#: 384x384 attention layers with the largest gain per byte, then the two FFN up-projections
#: with the largest gain. Cost: +2.8 MB over all-NVFP4 (Linear weights 8.8 MB vs 43 MB FP32).
DEFAULT_KEEP: tuple[str, ...] = (
    "encoder.layer.5.attention.output.dense",
    "encoder.layer.5.attention.self.value",
    "encoder.layer.4.attention.self.value",
    "encoder.layer.3.attention.self.value",
    "encoder.layer.1.attention.self.value",
    "encoder.layer.4.intermediate.dense",
    "encoder.layer.0.intermediate.dense",
)
KEEP_DTYPE = torch.bfloat16
#: Storage dtype of the floating tensors that are not quantized (embeddings, LayerNorms,
#: biases). Recorded in the config as ``govrag_dense_dtype``.
DENSE_DTYPE = torch.bfloat16
GPTQ_DAMP = 0.1  # fraction of the mean Hessian diagonal added: 0.1 generalises better than 0.01
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2
# Files copied verbatim so the quantized dir loads without the base package.
_COPY_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_model` wrote and how much smaller it is."""

    out_dir: str
    method: str
    quantized_tensors: int  # Linear weights stored as NVFP4
    kept_tensors: int  # other tensors (embeddings, LayerNorms, biases, kept Linear weights)
    linear_bytes_before: int  # FP32 bytes of all Linear weights
    linear_bytes_after: int  # NVFP4 parts (codes + FP8 block scales + FP32 global scales) + kept BF16
    file_bytes_before: int
    file_bytes_after: int
    kept_linear: tuple[str, ...] = ()  # Linear modules left unquantized (stored BF16)
    kept_linear_bytes: int = 0  # their BF16 bytes (included in linear_bytes_after)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def quantization_config(ignore: Sequence[str] = ()) -> dict[str, object]:
    """The ``quantization_config`` block (compressed-tensors schema, NVFP4 weights only).

    ``ignore`` lists Linear modules left unquantized (compressed-tensors' own key for that):
    their ``<module>.weight`` is stored dense.
    """
    return {
        "quant_method": "compressed-tensors",
        "format": QUANT_FORMAT,
        "quantization_status": "compressed",
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "format": QUANT_FORMAT,
                "weights": {
                    "num_bits": 4,
                    "type": "float",
                    "strategy": "tensor_group",
                    "group_size": GROUP_SIZE,
                    "symmetric": True,
                    "dynamic": False,
                    "observer": "minmax",
                },
                "input_activations": None,
                "output_activations": None,
            }
        },
        "ignore": list(ignore),
        "kv_cache_scheme": None,
        # Stored global scale is 448*6/amax (compressed-tensors convention); dequantize as
        # code * weight_scale / weight_global_scale.
        "global_scale_convention": "weight_global_scale = 448*6/amax",
    }


def _linear_weight_names(base_dir: Path) -> set[str]:
    """Names of the ``nn.Linear`` weights of the base BERT model (pooler included)."""
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(str(base_dir))
    with torch.device("meta"):
        model = BertModel(config)
    return {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


def _input_hessians(base_dir: Path, texts: Sequence[str], batch_size: int = 32) -> dict[str, torch.Tensor]:
    """``X^T X`` of every Linear layer's input over ``texts`` (padding tokens excluded)."""
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = BertModel.from_pretrained(str(base_dir)).eval()
    hessians: dict[str, torch.Tensor] = {}
    mask_holder: list[torch.Tensor] = []

    def hook(name: str) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def fn(_mod: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = inputs[0].detach().float()
            if x.ndim == 3:  # [B, T, K]: keep real tokens only, as padding is masked downstream
                x = x[mask_holder[0].bool()]
            x = x.reshape(-1, x.shape[-1])
            hessians[name] = hessians.get(name, 0) + x.T @ x

        return fn

    handles = [
        mod.register_forward_hook(hook(f"{name}.weight"))
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear)
    ]
    try:
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                tok = tokenizer(
                    list(texts[i : i + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=MAX_SEQ_LENGTH,
                    return_tensors="pt",
                )
                mask_holder[:] = [tok["attention_mask"]]
                model(**tok)
    finally:
        for h in handles:
            h.remove()
    return hessians


def quantize_model(
    out_dir: Path,
    base_dir: Path | None = None,
    method: str = DEFAULT_METHOD,
    calibration_texts: Sequence[str] | None = None,
    keep: Sequence[str] | None = None,
    dense_dtype: torch.dtype = DENSE_DTYPE,
) -> QuantizeReport:
    """Quantize all-MiniLM-L6-v2's Linear weights to NVFP4 and write a self-contained dir.

    ``method`` (see :data:`METHODS`): ``"gptq"`` (default) chooses codes and block scales
    that minimise each layer's output error on ``calibration_texts`` (default: generic text,
    :func:`embedding.calibration.generic_texts`, never the corpus being indexed);
    ``"mse"`` only searches each block's FP8 scale for the least weight error; ``"rtn"`` is
    the plain amax recipe. ``keep`` names Linear modules to leave unquantized, stored BF16
    and listed in the config's ``ignore`` (default :data:`DEFAULT_KEEP`; ``()`` quantizes
    all). Every method writes the same compressed-tensors format; docs/nvfp4.md compares them.
    ``dense_dtype``: how the floating tensors that are not quantized are stored (default
    BF16; ``torch.float32`` writes the larger format of earlier versions, for comparison).
    """
    from safetensors.torch import load_file, save_file

    if method not in METHODS:
        raise ValueError(f"unknown quantization method {method!r}; use one of {', '.join(METHODS)}")
    base = Path(base_dir or model_path())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(base / "model.safetensors"))
    linear = _linear_weight_names(base)
    missing = linear - tensors.keys()
    if missing:
        raise ValueError(f"{base}: Linear weights not in model.safetensors: {sorted(missing)[:3]}")
    kept = tuple(DEFAULT_KEEP if keep is None else keep)
    unknown = [m for m in kept if f"{m}.weight" not in linear]
    if unknown:
        raise ValueError(f"keep names no Linear module of the model: {unknown[:3]}")
    kept_weights = {f"{m}.weight" for m in kept}
    hessians: dict[str, torch.Tensor] = {}
    if method == "gptq":
        texts = list(calibration_texts) if calibration_texts is not None else generic_texts()
        hessians = _input_hessians(base, texts)

    result: dict[str, torch.Tensor] = {}
    before = after = kept_bytes = 0
    for name, tensor in tensors.items():
        if name in kept_weights:
            dense = tensor.to(KEEP_DTYPE).contiguous()
            result[name] = dense
            before += tensor.numel() * 4
            kept_bytes += dense.numel() * dense.element_size()
        elif name in linear:
            prefix = name[: -len(".weight")]
            if name in hessians:
                q = quantize_nvfp4_gptq(tensor, hessians[name], damp=GPTQ_DAMP, scale_search=True)
            else:  # rtn / mse, or a layer the calibration never reached
                q = quantize_nvfp4(tensor, scale_search=method != "rtn")
            for key, value in q.items():
                result[f"{prefix}.{key}"] = value.contiguous()
            before += tensor.numel() * 4
            after += sum(v.numel() * v.element_size() for v in q.values())
        elif tensor.is_floating_point():
            result[name] = tensor.to(dense_dtype).contiguous()
        else:  # integer buffers (position_ids, if a checkpoint has it) stay exact
            result[name] = tensor.contiguous()
    # Write to a temp name first so a crash never leaves a half-written model that loads.
    tmp = out / "model.safetensors.tmp"
    save_file(result, str(tmp), metadata={"format": "pt", "quantization": QUANT_FORMAT, "method": method})
    os.replace(tmp, out / "model.safetensors")

    config = json.loads((base / "config.json").read_text())
    qc = quantization_config(ignore=kept)
    qc["govrag_method"] = method
    qc["govrag_dense_dtype"] = str(dense_dtype).removeprefix("torch.")
    if kept:
        qc["govrag_ignored_dtype"] = str(KEEP_DTYPE).removeprefix("torch.")
        qc["govrag_ignored_bytes"] = kept_bytes
    config["quantization_config"] = qc
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for fname in _COPY_FILES:
        if (base / fname).exists():
            shutil.copy2(base / fname, out / fname)
    if (base / "1_Pooling").is_dir():
        shutil.copytree(base / "1_Pooling", out / "1_Pooling", dirs_exist_ok=True)

    return QuantizeReport(
        out_dir=str(out),
        method=method,
        quantized_tensors=len(linear) - len(kept),
        kept_tensors=len(tensors) - len(linear) + len(kept),
        linear_bytes_before=before,
        linear_bytes_after=after + kept_bytes,
        file_bytes_before=(base / "model.safetensors").stat().st_size,
        file_bytes_after=(out / "model.safetensors").stat().st_size,
        kept_linear=kept,
        kept_linear_bytes=kept_bytes,
    )


def load_nvfp4_encoder(model_dir: Path, device: str = "cpu", dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A transformers ``BertModel`` with the dequantized NVFP4 weights, in eval mode.

    ``dtype`` defaults to BF16 on CUDA and FP32 on CPU (BF16 matmuls are slow on most CPUs).
    """
    from transformers import BertConfig, BertModel

    model_dir = Path(model_dir)
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    config_dict = json.loads((model_dir / "config.json").read_text())
    # Drop quantization_config: transformers would otherwise route loading through the
    # compressed-tensors integration, which we neither need nor install.
    config_dict.pop("quantization_config", None)
    config = BertConfig.from_dict(config_dict)
    model = BertModel(config)
    state = load_nvfp4_state_dict(str(model_dir / "model.safetensors"), dtype=torch.float32)
    result = model.load_state_dict(state, strict=False)
    # position_ids is a non-persistent buffer in recent transformers: extra, harmless.
    unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]
    if result.missing_keys or unexpected:
        raise ValueError(
            f"{model_dir}: weights do not match BertModel "
            f"(missing {result.missing_keys[:3]}, unexpected {unexpected[:3]})"
        )
    # transformers wraps PreTrainedModel.to in a decorator whose type hides the method's `self`
    return model.to(device=device, dtype=dtype).eval()  # type: ignore[call-arg]


def mean_pool_normalize(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens then L2 normalisation (sentence-transformers' Pooling + Normalize)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize((summed / counts).float(), p=2, dim=1)


class Nvfp4Embedder:
    """all-MiniLM-L6-v2 with NVFP4-stored weights, run in process (implements ``Embedder``)."""

    dim = DIM

    def __init__(
        self,
        model_dir: Path,
        device: str = "cpu",
        batch_size: int = 64,
        dtype: torch.dtype | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        self.name = f"nvfp4:{MODEL_NAME}"
        model_dir = Path(model_dir)
        if not (model_dir / "model.safetensors").exists():
            raise EmbedderUnavailable(
                f"no NVFP4 model at {model_dir}",
                hint="create it with: govrag quantize --out DIR",
            )
        self.device = device
        self.batch_size = batch_size
        self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self._model = load_nvfp4_encoder(model_dir, device=device, dtype=dtype)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize as sentence-transformers does (truncate at 256 tokens, pad to the batch)."""
        return self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=MAX_SEQ_LENGTH,
            return_tensors="pt",
        )

    @torch.inference_mode()
    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the encoder on token ids; returns float32 unit vectors ``[B, 384]``."""
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        out = self._model(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool_normalize(out.last_hidden_state, attention_mask)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches; float32 rows of unit length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenize(texts[i : i + self.batch_size])
            parts.append(self.encode_tokens(tok["input_ids"], tok["attention_mask"]).cpu().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)
