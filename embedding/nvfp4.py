"""NVFP4 weight format in pure torch, laid out as compressed-tensors ``nvfp4-pack-quantized``.

The format, per 2-D weight ``W`` of shape ``[N, K]`` (``K`` = input features):

* **codes**: every element is an FP4 E2M1 number: sign bit + magnitude in
  ``{0, 0.5, 1, 1.5, 2, 3, 4, 6}`` (code = ``sign << 3 | index``). Rounding is
  round-to-nearest, ties-to-even (even = index with mantissa bit 0), values beyond 6
  saturate to 6, and the sign of zero is kept (``-0.0`` is code ``0x8``).
* **block scale** ``weight_scale``: one FP8 E4M3 (``float8_e4m3fn``) per 16 consecutive
  elements along ``K``; shape ``[N, K/16]``.
* **global scale** ``weight_global_scale``: one float32 per tensor, shape ``[1]``.
* **packing** ``weight_packed``: two codes per byte, the even column in the low nibble and
  the odd column in the high nibble; shape ``[N, K/2]``, uint8.

Scale convention (the one compressed-tensors and vLLM use; NVIDIA ModelOpt stores the
reciprocal as ``weight_scale_2``, and compressed-tensors' ModelOpt converter inverts it):

    weight_global_scale = 448 * 6 / amax(|W|)        # i.e. 1 / (amax / (6 * 448))
    weight_scale[n, b]  = fp8(weight_global_scale * amax(|W[n, 16b:16b+16]|) / 6)
    W[n, k] ~= e2m1(code[n, k]) * float(weight_scale[n, k // 16]) / weight_global_scale

So the *effective* per-block scale is ``weight_scale / weight_global_scale``; the global
scale only stretches the block scales so that the largest one lands on FP8's maximum (448),
using E4M3's full range. The global scale is often written as ``amax/(6*448)``: that is the
dequantization multiplier, the reciprocal of the stored value.

Choosing the numbers (the format above is fixed; only *which* codes and scales are stored
varies): :func:`quantize_nvfp4` with ``scale_search=False`` is the reference recipe (block
scale from the block's amax, round to nearest). ``scale_search=True`` tries the FP8 values
just below and above amax/6 for every block and keeps the one with the least (optionally
input-weighted) squared error: smaller scales clip the block's largest element a little but
resolve the rest more finely. :func:`quantize_nvfp4_gptq` adds GPTQ error feedback on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

GROUP_SIZE = 16
FP4_MAX = 6.0
FP8_MAX = 448.0  # largest finite float8_e4m3fn
FP8_DTYPE = torch.float8_e4m3fn

#: E2M1 magnitudes by 3-bit index; the sign is bit 3 of the 4-bit code.
E2M1_VALUES: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
# Midpoints between neighbouring magnitudes: a value equal to one of these is a tie.
_MIDPOINTS: tuple[float, ...] = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)

__all__ = [
    "E2M1_VALUES",
    "GROUP_SIZE",
    "dequantize_nvfp4",
    "e2m1_decode",
    "e2m1_encode",
    "global_scale_for",
    "load_nvfp4_state_dict",
    "pack_fp4",
    "quantize_nvfp4",
    "quantize_nvfp4_gptq",
    "round_to_e2m1",
    "search_block_scales",
    "unpack_fp4",
]

#: FP8 code steps tried around the amax scale by the scale search (-4 = four FP8 values
#: below, i.e. about 0.7x; +1 = one above). Measured on all-MiniLM-L6-v2: wider adds nothing.
SCALE_SEARCH_STEPS: tuple[int, ...] = (-4, -3, -2, -1, 0, 1)
_FP8_MAX_CODE = 0x7E  # 448; 0x7F is NaN in float8_e4m3fn


def e2m1_encode(x: Tensor) -> Tensor:
    """Round ``x`` (already divided by its scale) to 4-bit E2M1 codes, as uint8 in ``[0, 15]``.

    Round-to-nearest-even on ties, saturation at ±6, sign of zero kept.
    """
    if not torch.isfinite(x).all():
        raise ValueError("e2m1_encode: input has NaN or infinity")
    x = x.float()
    mag = x.abs()
    mids = torch.tensor(_MIDPOINTS, dtype=torch.float32, device=x.device)
    # The two bucketize sides differ only when mag sits exactly on a midpoint (a tie):
    # then pick the neighbour whose index is even (mantissa bit 0), i.e. ties-to-even.
    lo = torch.bucketize(mag, mids, right=False)
    hi = torch.bucketize(mag, mids, right=True)
    idx = torch.where(lo % 2 == 0, lo, hi)  # > 5 lands on index 7 (= 6.0): saturation
    sign = torch.signbit(x).to(torch.uint8)  # signbit keeps -0.0 negative
    return (sign << 3) | idx.to(torch.uint8)


def e2m1_decode(codes: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Map 4-bit E2M1 codes (uint8 in ``[0, 15]``) to their values; code 8 gives ``-0.0``."""
    table = torch.tensor(E2M1_VALUES, dtype=torch.float32, device=codes.device)
    mag = table[(codes & 0x7).long()]
    # copysign, not multiplication by -1, so that code 0x8 decodes to -0.0.
    neg = (codes & 0x8) != 0
    return torch.copysign(mag, torch.where(neg, -1.0, 1.0)).to(dtype)


def pack_fp4(codes: Tensor) -> Tensor:
    """Pack codes ``[N, K]`` into bytes ``[N, K/2]``: even column low nibble, odd column high."""
    if codes.ndim != 2 or codes.shape[1] % 2:
        raise ValueError(f"pack_fp4: need a 2-D tensor with an even column count, got {tuple(codes.shape)}")
    c = codes.to(torch.uint8)
    return (c[:, 0::2] & 0xF) | ((c[:, 1::2] & 0xF) << 4)


def unpack_fp4(packed: Tensor) -> Tensor:
    """Inverse of :func:`pack_fp4`: bytes ``[N, K/2]`` to codes ``[N, K]`` (uint8)."""
    low = packed & 0xF
    high = (packed >> 4) & 0xF
    return torch.stack((low, high), dim=-1).reshape(packed.shape[0], packed.shape[1] * 2)


def global_scale_for(weight: Tensor) -> Tensor:
    """The stored global scale ``448*6/amax`` (float32, shape ``[1]``); 1.0 for an all-zero tensor."""
    amax = weight.detach().abs().max().float()
    if amax == 0:
        return torch.ones(1, dtype=torch.float32, device=weight.device)
    # A tensor whose largest value is subnormal (below ~1.2e-38) would overflow 448*6/amax to
    # infinity, and then every block scale to NaN: cap it at the largest float32 instead.
    gscale = (FP8_MAX * FP4_MAX / amax).clamp(max=torch.finfo(torch.float32).max)
    return gscale.reshape(1).to(torch.float32)


def round_to_e2m1(x: Tensor) -> Tensor:
    """The E2M1 *value* nearest to ``x`` (saturating at ±6, sign of zero kept), elementwise.

    Same result as ``e2m1_decode(e2m1_encode(x))`` (ties to even included, since
    ``torch.round`` rounds half to even and the grid is 0.5/1/2-spaced on [0,2)/[2,4)/[4,6]),
    without the table lookups: used in the inner loops of the scale search and GPTQ.
    """
    a = x.abs().clamp(max=FP4_MAX)
    r = torch.where(a < 2, torch.round(a * 2) / 2, torch.where(a < 4, torch.round(a), torch.round(a / 2) * 2))
    return torch.copysign(r, x)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch ops single-threaded for a while (then restore the thread count).

    Quantization is thousands of small elementwise ops; splitting each over threads costs
    more than it saves, and on a busy 2-core machine OpenMP waits made GPTQ 20x slower
    (53 s vs 2.2 s for one 384x1536 layer).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _fp8_step(scale: Tensor, steps: int) -> Tensor:
    """The FP8 E4M3 value ``steps`` representable values above (below if negative) ``scale``
    (non-negative input), clamped to [0, 448]."""
    code = scale.view(torch.uint8).to(torch.int16) + steps
    return code.clamp(0, _FP8_MAX_CODE).to(torch.uint8).view(FP8_DTYPE)


def _divisor(scale: Tensor, gscale: Tensor) -> tuple[Tensor, Tensor]:
    """(effective scale, safe divisor): a zero scale divides by inf, giving signed zeros."""
    eff = scale.float() / gscale
    return eff, torch.where(eff == 0, torch.full_like(eff, float("inf")), eff)


def search_block_scales(
    blocks: Tensor,
    gscale: Tensor,
    importance: Tensor | None = None,
    steps: tuple[int, ...] = SCALE_SEARCH_STEPS,
) -> Tensor:
    """Per block of 16 (``blocks`` is ``[..., 16]``), the FP8 scale among the amax scale and its
    FP8 neighbours (``steps``) with the least squared error, weighted by ``importance``
    (broadcast to ``blocks``, e.g. the mean squared input of each column) when given."""
    block_amax = blocks.abs().amax(dim=-1)
    base = (gscale * block_amax / FP4_MAX).clamp(max=FP8_MAX).to(FP8_DTYPE)
    best_err: Tensor | None = None
    best = base
    for step in steps:
        cand = _fp8_step(base, step) if step else base
        eff, div = _divisor(cand, gscale)
        err = (round_to_e2m1(blocks / div.unsqueeze(-1)) * eff.unsqueeze(-1) - blocks) ** 2
        if importance is not None:
            err = err * importance
        err = err.sum(dim=-1)
        if best_err is None:
            best_err, best = err, cand
        else:
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, cand.float(), best.float()).to(FP8_DTYPE)
    return best


def quantize_nvfp4(weight: Tensor, scale_search: bool = False, importance: Tensor | None = None) -> dict[str, Tensor]:
    """Quantize a 2-D weight ``[N, K]`` (``K`` divisible by 16) to NVFP4.

    Returns ``{"weight_packed": uint8 [N, K/2], "weight_scale": float8_e4m3fn [N, K/16],
    "weight_global_scale": float32 [1]}`` (compressed-tensors names and convention).
    ``scale_search`` picks each block scale by least squared error among FP8 neighbours of
    the amax scale (:func:`search_block_scales`); ``importance`` (``[K]``, e.g. the mean
    squared input per column) weights that error. Default: the plain amax recipe.
    """
    with _one_thread():
        return _quantize_nvfp4(weight, scale_search, importance)


def _quantize_nvfp4(weight: Tensor, scale_search: bool, importance: Tensor | None) -> dict[str, Tensor]:
    if weight.ndim != 2:
        raise ValueError(f"quantize_nvfp4: need a 2-D weight, got shape {tuple(weight.shape)}")
    n, k = weight.shape
    if k % GROUP_SIZE:
        raise ValueError(f"quantize_nvfp4: K={k} is not a multiple of {GROUP_SIZE}")
    w = weight.detach().float()
    if not torch.isfinite(w).all():
        raise ValueError("quantize_nvfp4: weight has NaN or infinity")
    gscale = global_scale_for(w)
    blocks = w.reshape(n, k // GROUP_SIZE, GROUP_SIZE)
    if scale_search:
        imp = None if importance is None else importance.float().reshape(1, k // GROUP_SIZE, GROUP_SIZE)
        scale = search_block_scales(blocks, gscale, imp)
    else:
        block_amax = blocks.abs().amax(dim=-1)
        # Clamp before the cast: float8_e4m3fn has no infinity and torch does not saturate.
        scale = (gscale * block_amax / FP4_MAX).clamp(max=FP8_MAX).to(FP8_DTYPE)
    # The element divisor is the *rounded* FP8 scale, so dequantization inverts exactly what
    # was used here. A block whose scale underflows to 0 dequantizes to 0 whatever its codes,
    # so it gets divisor inf (codes become signed zeros) instead of a division by zero.
    eff = scale.float() / gscale
    eff = torch.where(eff == 0, torch.full_like(eff, float("inf")), eff)
    codes = e2m1_encode(blocks / eff.unsqueeze(-1)).reshape(n, k)
    return {
        "weight_packed": pack_fp4(codes),
        "weight_scale": scale,
        "weight_global_scale": gscale,
    }


def quantize_nvfp4_gptq(
    weight: Tensor,
    hessian: Tensor,
    damp: float = 0.01,
    scale_search: bool = True,
    block_size: int = 128,
) -> dict[str, Tensor]:
    """NVFP4 quantization with GPTQ error compensation (same output layout as :func:`quantize_nvfp4`).

    ``hessian`` is ``X^T X`` over calibration inputs of this layer (``[K, K]``). Columns are
    quantized left to right; each column's rounding error is pushed onto the columns not yet
    quantized, weighted by the inverse Hessian, so the layer *output* error is minimised
    rather than the weight error (lazy batched updates, ``block_size`` columns at a time, in
    float32). A 16-block's FP8 scale is fixed when the loop reaches its first column, from
    the already-updated weights: by amax, or with ``scale_search`` by least squared error
    weighted by the Hessian diagonal. The format is unchanged: any NVFP4 reader (and
    :func:`dequantize_nvfp4`) reads the result.
    """
    if weight.ndim != 2 or weight.shape[1] % GROUP_SIZE:
        raise ValueError(f"quantize_nvfp4_gptq: bad weight shape {tuple(weight.shape)}")
    if hessian.shape != (weight.shape[1], weight.shape[1]):
        raise ValueError(f"quantize_nvfp4_gptq: hessian {tuple(hessian.shape)} does not match K={weight.shape[1]}")
    with _one_thread():
        return _quantize_nvfp4_gptq(weight, hessian, damp, scale_search, block_size)


def _quantize_nvfp4_gptq(
    weight: Tensor, hessian: Tensor, damp: float, scale_search: bool, block_size: int
) -> dict[str, Tensor]:
    block_size = max(GROUP_SIZE, block_size - block_size % GROUP_SIZE)
    n, k = weight.shape
    w = weight.detach().float().clone()
    if not torch.isfinite(w).all():
        raise ValueError("quantize_nvfp4_gptq: weight has NaN or infinity")
    h = hessian.detach().double().clone()
    dead = torch.diag(h) == 0  # inputs never active: their columns cannot matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    importance = torch.diag(h).float()
    h += damp * torch.diag(h).mean() * torch.eye(k, dtype=h.dtype)
    # Upper Cholesky factor of H^-1: row i holds the update coefficients for column i.
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).float()
    gscale = global_scale_for(weight)
    scales = torch.empty(n, k // GROUP_SIZE, dtype=FP8_DTYPE)
    values = torch.empty(n, k)  # chosen E2M1 values (before scaling)
    eff = div = torch.ones(n)
    for b0 in range(0, k, block_size):
        b1 = min(b0 + block_size, k)
        wb = w[:, b0:b1].clone()
        errs = torch.empty_like(wb)
        hb = hinv[b0:b1, b0:b1]
        for j in range(b1 - b0):
            col = b0 + j
            if col % GROUP_SIZE == 0:
                blk = wb[:, j : j + GROUP_SIZE]
                if scale_search:
                    s = search_block_scales(blk, gscale, importance[col : col + GROUP_SIZE].unsqueeze(0))
                else:
                    s = (gscale * blk.abs().amax(dim=1) / FP4_MAX).clamp(max=FP8_MAX).to(FP8_DTYPE)
                scales[:, col // GROUP_SIZE] = s
                eff, div = _divisor(s, gscale)
            v = round_to_e2m1(wb[:, j] / div)
            values[:, col] = v
            err = (wb[:, j] - v * eff) / hb[j, j]
            wb[:, j + 1 :] -= err.unsqueeze(1) * hb[j, j + 1 :].unsqueeze(0)
            errs[:, j] = err
        w[:, b1:] -= errs @ hinv[b0:b1, b1:]
    # values are exact grid points (signed zeros kept), so encoding them gives their codes
    codes = e2m1_encode(values)
    return {"weight_packed": pack_fp4(codes), "weight_scale": scales, "weight_global_scale": gscale}


def dequantize_nvfp4(
    weight_packed: Tensor,
    weight_scale: Tensor,
    weight_global_scale: Tensor,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Rebuild the dense weight ``[N, K]`` from NVFP4 parts; the arithmetic is float32."""
    codes = unpack_fp4(weight_packed)
    n, k = codes.shape
    if weight_scale.shape != (n, k // GROUP_SIZE):
        raise ValueError(
            f"dequantize_nvfp4: weight_scale shape {tuple(weight_scale.shape)} does not match "
            f"packed weight {tuple(weight_packed.shape)} (expected {(n, k // GROUP_SIZE)})"
        )
    values = e2m1_decode(codes).reshape(n, k // GROUP_SIZE, GROUP_SIZE)
    eff = weight_scale.float() / weight_global_scale.float().reshape(())
    return (values * eff.unsqueeze(-1)).reshape(n, k).to(dtype)


def load_nvfp4_state_dict(path: str, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Read a compressed-tensors NVFP4 ``model.safetensors`` into a dense state dict.

    Every ``<m>.weight_packed`` / ``<m>.weight_scale`` / ``<m>.weight_global_scale`` triple
    becomes ``<m>.weight`` (dequantized, in ``dtype``); other floating tensors are cast to
    ``dtype`` and integer tensors (e.g. ``position_ids``) are kept. Only torch and safetensors
    are imported, so the Triton model can share this code from its own environment.
    """
    from safetensors.torch import load_file

    raw = load_file(path)
    out: dict[str, Tensor] = {}
    for name, tensor in raw.items():
        if name.endswith(".weight_packed"):
            prefix = name[: -len(".weight_packed")]
            try:
                scale = raw[f"{prefix}.weight_scale"]
                gscale = raw[f"{prefix}.weight_global_scale"]
            except KeyError as exc:
                raise ValueError(f"{path}: {prefix} has weight_packed but no {exc.args[0]}") from exc
            out[f"{prefix}.weight"] = dequantize_nvfp4(tensor, scale, gscale, dtype=dtype)
        elif name.endswith((".weight_scale", ".weight_global_scale")):
            continue
        elif tensor.is_floating_point():
            out[name] = tensor.to(dtype)
        else:
            out[name] = tensor
    return out
