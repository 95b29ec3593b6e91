"""The guard's margin for unseen users: a paired bootstrap bound on the Recall@20 drop."""

from __future__ import annotations

import numpy as np
import pytest

from edgerec.ir import Table
from edgerec.passes.guard import GuardData, check, measure
from edgerec.uncertainty import paired_drop_bound
from tests.factories import make_ir


def test_bound_is_deterministic_and_above_a_noisy_point_estimate() -> None:
    ref = np.ones(200)
    got = ref.copy()
    got[:3] = 0.0  # three users lose everything: a 1.5% drop, carried by very few users
    first = paired_drop_bound(got, ref, 0.95, seed=0)
    assert first == paired_drop_bound(got, ref, 0.95, seed=0)
    point, bound = first
    assert point == pytest.approx(0.015)
    assert bound > 0.02  # resampled user sets often hold 5+ of those users
    # the same 1.5% spread evenly over every user is certain: the bound is the point
    assert paired_drop_bound(np.full(200, 0.985), ref, 0.95)[1] == pytest.approx(0.015)


def test_check_refuses_a_point_estimate_within_budget_whose_bound_is_not() -> None:
    ref = {"lookup/recall@20": 0.20}
    got = {"lookup/recall@20": 0.197, "lookup/recall@20_drop": 0.015, "lookup/recall@20_drop_bound": 0.03}
    problems = check(got, ref, ("lookup",), 0.02, None)
    assert len(problems) == 1 and "upper bound" in problems[0] and "3.0%" in problems[0]
    assert check(got, ref, ("lookup",), 0.02, None, use_bound=False) == []
    assert check({**got, "lookup/recall@20_drop_bound": 0.018}, ref, ("lookup",), 0.02, None) == []


def test_measure_records_the_drop_and_its_bound_deterministically() -> None:
    reference = make_ir(num_users=80, num_items=150, dim=8, seed=3)
    rng = np.random.default_rng(0)
    noisy = reference.replace(tables={**reference.tables, "item": Table(
        reference.tables["item"].values + 0.8 * rng.standard_normal((150, 8)).astype(np.float32))})
    # truth: each user's reference top-10 (so the reference scores well and the noise costs recall)
    from edgerec.scoring import ir_topk
    top = ir_topk(reference, np.arange(80), 10)
    truth = (np.arange(0, 81) * 10, top.ravel().astype(np.int32))
    data = GuardData.from_truth(truth, 80, margin=0.95)
    m1, m2 = measure(noisy, reference, data), measure(noisy, reference, data)
    assert m1 == m2
    for mode in ("lookup", "history"):
        drop, bound = m1[f"{mode}/recall@20_drop"], m1[f"{mode}/recall@20_drop_bound"]
        assert drop > 0 and bound > drop
    plain = measure(noisy, reference, GuardData.from_truth(truth, 80))
    assert "lookup/recall@20_drop_bound" not in plain
    # the reference measured against itself records no bound (it is what the drop is relative to)
    assert "lookup/recall@20_drop" not in measure(reference, reference, data)


def test_the_guard_holds_the_bound_only_when_asked() -> None:
    from edgerec.errors import GuardError
    from edgerec.passes.guard import guard
    from edgerec.scoring import ir_topk

    reference = make_ir(num_users=80, num_items=150, dim=8, seed=3, modes=("lookup",))
    rng = np.random.default_rng(0)
    noisy = reference.replace(tables={**reference.tables, "item": Table(
        reference.tables["item"].values + 0.3 * rng.standard_normal((150, 8)).astype(np.float32))})
    top = ir_topk(reference, np.arange(80), 10)
    data = GuardData.from_truth((np.arange(0, 81) * 10, top.ravel().astype(np.int32)), 80, margin=0.95)
    m = measure(noisy, reference, data)
    drop, bound = m["lookup/recall@20_drop"], m["lookup/recall@20_drop_bound"]
    assert drop < bound
    budget = (drop + bound) / 2  # the point estimates pass, the bounds do not
    with pytest.raises(GuardError, match="upper bound"):
        guard(noisy, reference, data, max_recall_drop=budget)
    out, report = guard(noisy, reference, data, max_recall_drop=budget, use_bound=False)
    assert report.notes == [] and out.metrics["compiled"]["lookup/recall@20_drop_bound"] > budget
