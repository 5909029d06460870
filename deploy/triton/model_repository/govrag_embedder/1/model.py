"""Triton Python-backend model: all-MiniLM-L6-v2 with NVFP4-stored weights -> unit vectors.

Inputs (per request, batch dimension first; send either TEXT or the two token tensors):
  TEXT            BYTES [B, 1]   raw text, tokenized here (server-side tokenization)
  INPUT_IDS       INT64 [B, T]   token ids from the client (client-side tokenization)
  ATTENTION_MASK  INT64 [B, T]
Output:
  EMBEDDING       FP32  [B, 384] mean-pooled, L2-normalised

Parameters (config.pbtxt): ``model_dir`` (quantized dir written by ``govrag quantize``; a
plain safetensors model dir works too, for a dense baseline), ``max_seq_length``.

Precision, honestly: the weights are *stored* as NVFP4 (except the few Linear layers the
config's ``ignore`` lists, stored BF16) and dequantized once at load, to BF16 on GPU and FP32
on CPU; the matmuls run in that precision. Hopper (H100/H200) has no FP4
tensor cores, so there NVFP4 saves memory and load bandwidth, not FLOPs. Native FP4 GEMMs need
sm_100+ (Blackwell) and a kernel this model does not ship.

I/O goes through DLPack (torch), not numpy: the Python backend stub's numpy bridge is built
for numpy 1.x and returns empty/corrupt tensors with numpy 2. BYTES (TEXT) inputs can only be
read through numpy, so server-side tokenization needs numpy<2 in the server's environment.

The file imports without Triton (``triton_python_backend_utils`` only exists inside the
server), so it can be linted and unit-tested anywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

try:  # only inside tritonserver's Python backend stub
    import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - outside Triton
    pb_utils = None

DIM = 384


def _load_nvfp4_module() -> Any:
    """Import the shared ``nvfp4.py`` (copied next to this file when the repo is rendered,
    else taken from the govrag source tree this file sits in)."""
    here = Path(__file__).resolve()
    candidates = [here.with_name("nvfp4.py")]
    candidates += [p / "embedding" / "nvfp4.py" for p in here.parents]
    for path in candidates:
        if path.exists():
            spec = importlib.util.spec_from_file_location("govrag_nvfp4", path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            return module
    raise RuntimeError("nvfp4.py not found next to model.py nor in a govrag source tree")


class Encoder:
    """Tokenizer + BERT encoder + mean pooling; usable without Triton."""

    def __init__(self, model_dir: str, device: str = "cpu", max_seq_length: int = 256) -> None:
        import torch
        from transformers import AutoTokenizer, BertConfig, BertModel

        self.torch = torch
        self.device = device
        self.dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.max_seq_length = max_seq_length
        root = Path(model_dir)
        config_dict = json.loads((root / "config.json").read_text())
        qc = config_dict.pop("quantization_config", None) or {}
        self.quantization = qc.get("format", "none")
        # Linear modules left unquantized (compressed-tensors "ignore"): stored as a dense
        # (BF16) "<module>.weight", which load_nvfp4_state_dict passes through like any tensor.
        self.unquantized = list(qc.get("ignore") or [])
        model = BertModel(BertConfig.from_dict(config_dict))
        nvfp4 = _load_nvfp4_module()
        state = nvfp4.load_nvfp4_state_dict(str(root / "model.safetensors"), dtype=torch.float32)
        result = model.load_state_dict(state, strict=False)
        unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]
        if result.missing_keys or unexpected:
            raise RuntimeError(f"weights do not match BertModel: {result.missing_keys[:3]} {unexpected[:3]}")
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(root))

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np")
        return tok["input_ids"].astype(np.int64), tok["attention_mask"].astype(np.int64)

    def encode(self, input_ids: Any, attention_mask: Any) -> Any:
        """Token ids (numpy or torch, int64 ``[B, T]``) -> float32 CPU torch tensor ``[B, 384]``."""
        torch = self.torch
        with torch.inference_mode():
            ids = torch.as_tensor(input_ids).to(self.device, non_blocking=True)
            mask = torch.as_tensor(attention_mask).to(self.device, non_blocking=True)
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1).float() / m.sum(1).float().clamp(min=1e-9)
            out = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return out.float().cpu().contiguous()


def _pad(arrays: list[Any]) -> Any:
    """Right-pad int64 torch tensors [b_i, t_i] with zeros to one [sum b_i, max t_i] tensor."""
    import torch

    width = max(a.shape[1] for a in arrays)
    return torch.cat([torch.nn.functional.pad(a, (0, width - a.shape[1])) for a in arrays])


def _int64(t: Any) -> Any:
    """A Triton input tensor as a torch int64 tensor, via DLPack (no numpy: the stub's numpy
    bridge is built against numpy 1.x and misreads numpy 2 arrays), numpy as a fallback."""
    import torch

    try:
        return torch.from_dlpack(t.to_dlpack()).to(torch.int64)
    except Exception:  # older backends without DLPack
        return torch.from_numpy(np.ascontiguousarray(t.as_numpy())).to(torch.int64)


def _output(name: str, tensor: Any) -> Any:
    """A pb_utils output tensor from a contiguous float32 CPU torch tensor, via DLPack."""
    import torch.utils.dlpack

    try:
        return pb_utils.Tensor.from_dlpack(name, torch.utils.dlpack.to_dlpack(tensor.contiguous()))
    except Exception:  # older backends without DLPack
        return pb_utils.Tensor(name, tensor.numpy())


class TritonPythonModel:
    """Triton entry point. Requests in one ``execute`` call are merged into one forward pass."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        model_dir = params.get("model_dir") or os.environ.get("GOVRAG_NVFP4_MODEL_DIR", "")
        if not model_dir:
            raise RuntimeError("set parameter model_dir in config.pbtxt (or GOVRAG_NVFP4_MODEL_DIR)")
        device = "cpu"
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args.get('model_instance_device_id', '0')}"
        self.encoder = Encoder(model_dir, device, int(params.get("max_seq_length") or 256))
        msg = f"govrag_embedder: {model_dir} ({self.encoder.quantization}) on {device} as {self.encoder.dtype}"
        if self.encoder.unquantized:
            msg += f"; {len(self.encoder.unquantized)} Linear layer(s) stored unquantized"
        if device.startswith("cuda"):
            cap = self.encoder.torch.cuda.get_device_capability(device)
            msg += f"; sm_{cap[0]}{cap[1]}: weights dequantized at load, no FP4 GEMM used"
        if pb_utils is not None:
            pb_utils.Logger.log_info(msg)

    def execute(self, requests: list[Any]) -> list[Any]:
        ids_parts, mask_parts, sizes, errors = [], [], [], {}
        for i, request in enumerate(requests):
            try:
                text = pb_utils.get_input_tensor_by_name(request, "TEXT")
                if text is not None:
                    texts = [
                        t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t)
                        for t in text.as_numpy().reshape(-1)
                    ]
                    ids_np, mask_np = self.encoder.tokenize(texts)
                    ids, mask = self.encoder.torch.from_numpy(ids_np), self.encoder.torch.from_numpy(mask_np)
                else:
                    ids_t = pb_utils.get_input_tensor_by_name(request, "INPUT_IDS")
                    mask_t = pb_utils.get_input_tensor_by_name(request, "ATTENTION_MASK")
                    if ids_t is None or mask_t is None:
                        raise ValueError("send TEXT, or INPUT_IDS with ATTENTION_MASK")
                    ids, mask = _int64(ids_t), _int64(mask_t)
                    if ids.shape != mask.shape or ids.ndim != 2:
                        raise ValueError(f"INPUT_IDS {tuple(ids.shape)} and ATTENTION_MASK {tuple(mask.shape)} differ")
                ids_parts.append(ids.to(self.encoder.torch.int64))
                mask_parts.append(mask.to(self.encoder.torch.int64))
                sizes.append(ids.shape[0])
            except Exception as exc:  # one bad request must not fail the others
                errors[i] = str(exc)
                sizes.append(0)
        vectors = self.encoder.torch.zeros((0, DIM))
        if ids_parts:
            vectors = self.encoder.encode(_pad(ids_parts), _pad(mask_parts))
        responses, offset = [], 0
        for i, n in enumerate(sizes):
            if i in errors:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(errors[i])))
                continue
            out = _output("EMBEDDING", vectors[offset : offset + n])
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            offset += n
        return responses
