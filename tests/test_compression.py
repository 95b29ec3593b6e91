"""int4 tables (round-trip error, honest byte counts, IR round trip) and the distillation pass."""

from __future__ import annotations

import numpy as np
import pytest

from edgerec.errors import IRError
from edgerec.ir import Table, load_ir, save_ir
from edgerec.passes.distill import distill
from edgerec.passes.prune import prune
from edgerec.passes.quantize import int4_groups_roundtrip, quantize, quantize_rows_int4
from edgerec.scoring import agreement, history_vectors
from tests.factories import make_ir


def test_int4_values_scales_and_error_bound() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((50, 13)).astype(np.float32) * rng.uniform(0.01, 5, (50, 1)).astype(np.float32)
    v[3] = 0.0
    t = quantize_rows_int4(v)
    assert t.bits == 4 and t.values.dtype == np.int8 and t.scale.dtype == np.float32
    assert np.abs(t.values).max() <= 7 and t.values.min() >= -7
    assert t.scale[3] == 1.0 and not t.values[3].any()
    err = ((t.dequantize() - v) ** 2).sum(axis=1)
    # never worse than the unclipped rule (scale = max|row| / 7, error <= scale / 2 per value)
    amax = np.abs(v).max(axis=1)
    assert np.all(err <= v.shape[1] * (amax / 14) ** 2 + 1e-9)
    # (the scale is rounded to float16: up to 2^-11 of itself above the unclipped one)
    assert np.all((t.scale <= amax / 7 * (1 + 2**-11)) | (amax == 0))


def test_int4_byte_counts_are_packed() -> None:
    even = quantize_rows_int4(np.ones((10, 16), np.float32))
    odd = quantize_rows_int4(np.ones((10, 7), np.float32))
    assert even.nbytes == 10 * 8 + 10 * 2  # a float16 scale a row
    assert odd.nbytes == 10 * 4 + 10 * 2
    ir = make_ir(dim=16)
    i8, i4 = quantize(ir, "int8")[0], quantize(ir, "int4")[0]
    assert all(t.bits == 4 for t in i4.tables.values())
    rows = ir.num_items + ir.num_users + ir.num_items  # item, user, history_item
    assert i4.nbytes == rows * (8 + 2) and i8.nbytes == rows * (16 + 2)


def test_int4_groups_match_rows_when_one_group() -> None:
    v = np.random.default_rng(1).standard_normal((20, 16)).astype(np.float32)
    out, nbytes = int4_groups_roundtrip(v, 16)
    np.testing.assert_array_equal(out, quantize_rows_int4(v).dequantize())
    assert nbytes == 20 * (8 + 2)
    out4, nbytes4 = int4_groups_roundtrip(v, 4)
    assert nbytes4 == 20 * (8 + 4 * 2)
    assert ((out4 - v) ** 2).sum() < ((out - v) ** 2).sum()  # finer scales, smaller error
    with pytest.raises(ValueError, match="group"):
        int4_groups_roundtrip(v, 0)


def test_int4_ir_round_trip_and_validation(tmp_path) -> None:
    ir = quantize(make_ir(), "int4")[0]
    loaded = load_ir(save_ir(ir, tmp_path / "ir"))
    assert {n: t.bits for n, t in loaded.tables.items()} == {n: 4 for n in ir.tables}
    assert loaded.nbytes == ir.nbytes
    bad = dict(ir.tables, item=Table(ir.tables["item"].values * 2, ir.tables["item"].scale, bits=4))
    with pytest.raises(IRError, match=r"\[-7, 7\]"):
        ir.replace(tables=bad).validate()
    with pytest.raises(IRError, match="bits"):
        ir.replace(tables=dict(ir.tables, item=Table(np.ones((ir.num_items, ir.dim), np.float32), bits=4))).validate()


def test_distill_beats_plain_truncation_and_keeps_the_fold_exact() -> None:
    ref = make_ir(num_users=120, num_items=300, dim=16, seed=3)
    small = prune(ref, 4)[0]
    users = np.arange(ref.num_users)
    dist, rep = distill(small, ref, epochs=10, lr=3e-2, batch_size=128, temperature=0.5, seed=0)
    assert dist.dim == 4 and rep.metrics_after["kl"] < rep.metrics_before["kl"]
    for mode in ("lookup", "history"):
        before = agreement(small, ref, users, k=10, mode=mode)
        after = agreement(dist, ref, users, k=10, mode=mode)
        assert after > before + 0.02, (mode, before, after)
    # lookup vectors are still exactly user_base + n^-1/2 Σ history_item over the seen items
    np.testing.assert_allclose(history_vectors(dist, users, with_base=True),
                               dist.tables["user"].values, rtol=1e-4, atol=1e-5)
    assert dist.passes[-1]["name"] == "distill"


def test_distill_quantization_aware_runs_and_checks_arguments() -> None:
    ref = make_ir(num_users=40, num_items=80, dim=8, seed=1)
    small = prune(ref, 4)[0]
    out, rep = distill(small, ref, epochs=2, quant_bits=4, batch_size=16)
    assert rep.params["quant_bits"] == 4 and out.tables["item"].dtype == "float32"
    with pytest.raises(ValueError, match="quant_bits"):
        distill(small, ref, quant_bits=3)
    with pytest.raises(ValueError, match="must match"):
        distill(small, make_ir(num_users=41, num_items=80, dim=8))
    with pytest.raises(ValueError, match="lightgcn"):
        distill(small.replace(history={"kind": "sage", "aggregation": "mean", "norm": "inv_len"}), ref)
