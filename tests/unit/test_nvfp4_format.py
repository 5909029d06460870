"""NVFP4 format: E2M1 codes, rounding, packing, scales, and a cross-check against a scalar
reference written here from the format description (not from embedding.nvfp4)."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from embedding.nvfp4 import (
    E2M1_VALUES,
    dequantize_nvfp4,
    e2m1_decode,
    e2m1_encode,
    global_scale_for,
    pack_fp4,
    quantize_nvfp4,
    unpack_fp4,
)

# ---------------------------------------------------------------- scalar reference


def f32(x: float) -> float:
    """Round a Python float to the nearest float32 (what a torch float32 op yields)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def ref_fp8_e4m3(v: float) -> float:
    """float8_e4m3fn rounding, nearest-even, for 0 <= v <= 448 (bias 7, 3 mantissa bits)."""
    if v == 0:
        return 0.0
    e = max(math.floor(math.log2(v)), -6)  # below 2**-6 the spacing stays 2**-9 (subnormals)
    q = 2.0 ** (e - 3)
    return round(v / q) * q  # Python's round() is round-half-even


def ref_e2m1(x: float) -> int:
    """Nearest E2M1 code, ties to the even index, saturating at 6, keeping the sign of zero."""
    sign = 8 if math.copysign(1.0, x) < 0 else 0
    m = abs(x)
    best = 0
    for i, v in enumerate(E2M1_VALUES):
        d, db = abs(m - v), abs(m - E2M1_VALUES[best])
        if d < db or (d == db and i % 2 == 0 and best % 2 == 1):
            best = i
    return sign | best


def ref_quantize(w: list[list[float]]) -> tuple[list[list[int]], list[list[float]], float]:
    amax = max(abs(v) for row in w for v in row)
    gs = f32(448.0 * 6.0 / amax)
    codes, scales = [], []
    for row in w:
        crow, srow = [], []
        for b in range(0, len(row), 16):
            block = row[b : b + 16]
            s = ref_fp8_e4m3(min(f32(f32(gs * max(abs(v) for v in block)) / 6.0), 448.0))
            eff = f32(s / gs)
            srow.append(s)
            crow += [ref_e2m1(f32(v / eff)) if eff else (8 if v < 0 else 0) for v in block]
        codes.append(crow)
        scales.append(srow)
    return codes, scales, gs


# ---------------------------------------------------------------- E2M1


def test_e2m1_table_round_trips_all_16_codes() -> None:
    codes = torch.arange(16, dtype=torch.uint8)
    values = e2m1_decode(codes)
    assert values[:8].tolist() == list(E2M1_VALUES)
    assert values[8:].tolist() == [-v for v in E2M1_VALUES]
    assert e2m1_encode(values).tolist() == list(range(16))  # -0.0 encodes back to 0x8


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0.25, 0.0),
        (0.75, 1.0),
        (1.25, 1.0),
        (1.75, 2.0),
        (2.5, 2.0),
        (3.5, 4.0),
        (5.0, 4.0),
        (-0.75, -1.0),
        (-5.0, -4.0),
    ],
)
def test_e2m1_ties_round_to_even(x: float, expected: float) -> None:
    assert e2m1_decode(e2m1_encode(torch.tensor([x]))).item() == expected


@pytest.mark.parametrize(("x", "expected"), [(0.26, 0.5), (0.74, 0.5), (2.51, 3.0), (4.99, 4.0), (5.01, 6.0)])
def test_e2m1_nearest_off_ties(x: float, expected: float) -> None:
    assert e2m1_decode(e2m1_encode(torch.tensor([x]))).item() == expected


def test_e2m1_saturates_at_six() -> None:
    out = e2m1_decode(e2m1_encode(torch.tensor([6.0, 7.0, 1e6, -9.0])))
    assert out.tolist() == [6.0, 6.0, 6.0, -6.0]


def test_e2m1_keeps_sign_of_zero() -> None:
    codes = e2m1_encode(torch.tensor([0.0, -0.0, -0.1, 0.1]))
    assert codes.tolist() == [0x0, 0x8, 0x8, 0x0]
    decoded = e2m1_decode(codes)
    assert torch.signbit(decoded).tolist() == [False, True, True, False]


def test_e2m1_rejects_nan() -> None:
    with pytest.raises(ValueError):
        e2m1_encode(torch.tensor([float("nan")]))


# ---------------------------------------------------------------- packing


def test_pack_even_column_low_nibble() -> None:
    codes = torch.tensor([[0x1, 0x2, 0xF, 0x8]], dtype=torch.uint8)
    packed = pack_fp4(codes)
    assert packed.dtype == torch.uint8
    assert packed.tolist() == [[0x21, 0x8F]]
    assert torch.equal(unpack_fp4(packed), codes)


def test_pack_rejects_odd_columns() -> None:
    with pytest.raises(ValueError):
        pack_fp4(torch.zeros(2, 3, dtype=torch.uint8))


# ---------------------------------------------------------------- scales and layout


def test_shapes_dtypes_and_scale_formulas() -> None:
    torch.manual_seed(0)
    w = torch.randn(8, 64)
    q = quantize_nvfp4(w)
    assert q["weight_packed"].shape == (8, 32) and q["weight_packed"].dtype == torch.uint8
    assert q["weight_scale"].shape == (8, 4) and q["weight_scale"].dtype == torch.float8_e4m3fn
    assert q["weight_global_scale"].shape == (1,) and q["weight_global_scale"].dtype == torch.float32
    amax = w.abs().max()
    # stored global scale = 448*6/amax (compressed-tensors); its reciprocal is amax/(6*448)
    assert q["weight_global_scale"].item() == pytest.approx(2688.0 / amax.item(), rel=1e-6)
    expected_block = (q["weight_global_scale"] * w.reshape(8, 4, 16).abs().amax(-1) / 6).to(torch.float8_e4m3fn)
    assert torch.equal(q["weight_scale"].float(), expected_block.float())
    # the largest block lands on FP8's maximum
    assert q["weight_scale"].float().max().item() == 448.0


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        quantize_nvfp4(torch.randn(4, 20))
    with pytest.raises(ValueError):
        quantize_nvfp4(torch.randn(16))


def test_all_zero_weight() -> None:
    q = quantize_nvfp4(torch.zeros(2, 32))
    assert q["weight_global_scale"].item() == 1.0
    assert torch.equal(dequantize_nvfp4(**q), torch.zeros(2, 32))


def test_values_on_the_grid_are_exact() -> None:
    # Block amax = tensor amax * 2**-j makes every block scale 448 * 2**-j, exact in FP8.
    torch.manual_seed(1)
    grid = torch.tensor(E2M1_VALUES)
    rows = []
    for j in range(4):
        idx = torch.randint(0, 8, (32,))
        idx[0], idx[16] = 7, 7  # each block holds a 6
        sign = torch.where(torch.rand(32) < 0.5, -1.0, 1.0)
        rows.append(grid[idx] * sign * 2.0 ** (-j) * 0.01)
    w = torch.stack(rows)
    out = dequantize_nvfp4(**quantize_nvfp4(w))
    torch.testing.assert_close(out, w, rtol=1e-6, atol=0)


def test_matches_scalar_reference() -> None:
    rng = np.random.default_rng(7)
    # mixed magnitudes, exact ties and zeros, so FP8 subnormal scales and RNE both get exercised
    w = rng.standard_normal((6, 48)).astype(np.float32)
    w[1] *= 1e-3
    w[2, :16] = 0.0
    w[3, 16:32] = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0] * 2
    w[4] *= 1e-6
    q = quantize_nvfp4(torch.from_numpy(w))
    codes, scales, gs = ref_quantize(w.tolist())
    assert q["weight_global_scale"].item() == gs
    assert q["weight_scale"].float().tolist() == scales
    assert unpack_fp4(q["weight_packed"]).tolist() == codes
    deq = dequantize_nvfp4(**q)
    ref = [
        [
            math.copysign(E2M1_VALUES[c & 7], -1.0 if c & 8 else 1.0) * f32(scales[r][k // 16] / gs)
            for k, c in enumerate(row)
        ]
        for r, row in enumerate(codes)
    ]
    np.testing.assert_allclose(deq.numpy(), np.array(ref, dtype=np.float32), rtol=1e-6, atol=0)


def test_dequantize_dtype_and_shape_check() -> None:
    q = quantize_nvfp4(torch.randn(4, 32))
    assert dequantize_nvfp4(**q, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        dequantize_nvfp4(q["weight_packed"], q["weight_scale"][:, :1], q["weight_global_scale"])


# ---------------------------------------------------------------- error bound (property)


def _check_bound(w: torch.Tensor) -> None:
    q = quantize_nvfp4(w)
    err = (dequantize_nvfp4(**q) - w).abs().reshape(w.shape[0], -1, 16)
    gs = q["weight_global_scale"].item()
    block_amax = w.abs().reshape(w.shape[0], -1, 16).amax(-1, keepdim=True)
    # E2M1 spacing is at most 2 (4 -> 6), so rounding costs at most one effective scale;
    # the FP8 scale itself is off by <= 2**-4 relative (normal) or 2**-10 absolute (subnormal).
    bound = block_amax / 6 * (1 + 2**-4) + 6 * 2**-10 / gs
    assert bool((err <= bound * (1 + 1e-5) + 1e-30).all())
    # and exactly: never more than the stored effective block scale
    eff = (q["weight_scale"].float() / gs).unsqueeze(-1)
    assert bool((err <= torch.maximum(eff, block_amax - 6 * eff) * (1 + 1e-5)).all())


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.sampled_from([16, 32, 64])),
        elements=st.floats(-1e4, 1e4, allow_nan=False, width=32),
    ),
    st.sampled_from([1.0, 1e-3, 1e-6, 1e3]),
)
def test_round_trip_error_bound(w: np.ndarray, factor: float) -> None:
    t = torch.from_numpy(w * np.float32(factor))
    if not torch.isfinite(t).all():
        return
    _check_bound(t)


def test_a_tensor_of_subnormal_values_quantizes_without_nan() -> None:
    """Found by the property above: amax 3.6e-39 overflowed the global scale to infinity."""
    t = torch.zeros(1, 32)
    t[0, 0] = 3.619411e-39
    _check_bound(t)
    assert torch.isfinite(global_scale_for(t)).all()


def test_round_trip_error_bound_gaussian() -> None:
    torch.manual_seed(3)
    w = torch.randn(64, 384) * 0.05
    _check_bound(w)
    rel = (dequantize_nvfp4(**quantize_nvfp4(w)) - w).norm() / w.norm()
    assert rel < 0.15  # ~0.1 is typical for 4-bit floats on Gaussian weights


def test_gptq_same_format_and_lower_output_error() -> None:
    from embedding.nvfp4 import quantize_nvfp4_gptq

    torch.manual_seed(4)
    w = torch.randn(32, 64)
    x = torch.randn(512, 64) @ torch.randn(64, 64) * 0.3  # correlated inputs, as in a real layer
    q = quantize_nvfp4_gptq(w, x.T @ x)
    assert q["weight_packed"].shape == (32, 32) and q["weight_scale"].dtype == torch.float8_e4m3fn
    err_gptq = (x @ (dequantize_nvfp4(**q) - w).T).norm()
    err_rtn = (x @ (dequantize_nvfp4(**quantize_nvfp4(w)) - w).T).norm()
    assert err_gptq < err_rtn


# ---------------------------------------------------------------- scale search and fast rounding


def test_round_to_e2m1_matches_encode_decode() -> None:
    from embedding.nvfp4 import round_to_e2m1

    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    x = torch.cat([torch.randn(5000) * 3, ties, -ties, torch.tensor([0.0, -0.0, 6.0, 7.5, -100.0])])
    want = e2m1_decode(e2m1_encode(x))
    got = round_to_e2m1(x)
    assert torch.equal(got, want)
    assert torch.equal(torch.signbit(got), torch.signbit(want))  # -0.0 stays negative


def _block_err(w: torch.Tensor, q: dict[str, torch.Tensor], importance: torch.Tensor | None = None) -> torch.Tensor:
    err = (dequantize_nvfp4(**q) - w) ** 2
    if importance is not None:
        err = err * importance
    return err.reshape(w.shape[0], -1, 16).sum(-1)


def test_scale_search_never_worse_per_block_and_same_format() -> None:
    torch.manual_seed(5)
    w = torch.randn(48, 128) * torch.rand(48, 1) * 0.1
    w[3, :16] = 0.0  # an all-zero block
    for importance in (None, torch.rand(128) + 0.1):
        plain = quantize_nvfp4(w)
        searched = quantize_nvfp4(w, scale_search=True, importance=importance)
        assert searched["weight_scale"].dtype == torch.float8_e4m3fn
        assert torch.equal(searched["weight_global_scale"], plain["weight_global_scale"])
        assert searched["weight_scale"].float().max().item() <= 448.0
        # the amax scale is one of the candidates, so no block gets worse
        assert bool((_block_err(w, searched, importance) <= _block_err(w, plain, importance) * (1 + 1e-6)).all())
    total_plain = _block_err(w, quantize_nvfp4(w)).sum()
    total_search = _block_err(w, quantize_nvfp4(w, scale_search=True)).sum()
    assert total_search < 0.9 * total_plain  # ~17 % less squared error on Gaussian weights
    torch.testing.assert_close(dequantize_nvfp4(**quantize_nvfp4(w, scale_search=True))[3, :16], torch.zeros(16))


def test_gptq_with_and_without_scale_search_read_back() -> None:
    from embedding.nvfp4 import quantize_nvfp4_gptq

    torch.manual_seed(6)
    w = torch.randn(24, 64)
    x = torch.randn(400, 64) @ torch.randn(64, 64) * 0.3
    h = x.T @ x
    for search in (False, True):
        q = quantize_nvfp4_gptq(w, h, scale_search=search, block_size=32)
        assert q["weight_packed"].shape == (24, 32) and q["weight_scale"].shape == (24, 4)
        codes = unpack_fp4(q["weight_packed"])
        assert int(codes.max()) <= 15
        assert torch.isfinite(dequantize_nvfp4(**q)).all()
    with pytest.raises(ValueError):
        quantize_nvfp4_gptq(w, h[:32, :32])
