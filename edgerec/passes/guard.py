"""The accuracy guard: measure what the passes cost, and refuse to emit a model that lost too much.

Recall@20 / NDCG@20 are measured on held-out interactions (the validation split) in every
serving mode the IR has, against the float model in the same mode; top-20 agreement with the
float model is measured on a sample of users and needs no labels. The guard refuses when the
relative Recall@20 drop exceeds ``max_recall_drop`` in any mode, or when agreement falls below
``min_agreement`` (only if the user set one: under rank reduction agreement falls much faster
than recall, so it is reported but not guarded by default).

The promise is about users the guard has not seen, so with ``GuardData.margin`` set (the
compiler's default, 0.95) the guard also measures a paired bootstrap over the validation users
of the relative drop (:mod:`edgerec.uncertainty`) and holds its upper quantile, not only the
point estimate, to ``max_recall_drop``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgerec.errors import GuardError
from edgerec.ir import IR, PassReport
from edgerec.metrics import ranking_metrics, recall_per_user, topk_agreement, users_with_items
from edgerec.passes.base import Pass
from edgerec.scoring import ir_topk
from edgerec.uncertainty import paired_drop_bound


@dataclass(frozen=True)
class GuardData:
    """What the guard measures on: held-out interactions, a user sample for agreement, and
    the bootstrap quantile of the drop the guard holds (:obj:`None`: the point estimate only)."""

    truth: tuple[np.ndarray, np.ndarray]
    sample_users: np.ndarray
    margin: float | None = None
    seed: int = 0
    # the float reference's top-k per (reference, mode, k): every candidate of a width search is
    # compared with it, and over millions of items ranking it again costs as much as the candidate
    _reference_topk: dict[tuple[int, str, int], tuple[IR, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False)
    # the reference's per-user recall per (mode, k), for the bootstrap: measured once too
    _reference_recall: dict[tuple[int, str, int], tuple[IR, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False)

    def reference_topk(self, reference: IR, k: int, mode: str) -> np.ndarray:
        """``reference``'s top-``k`` of the sample users in ``mode``, computed once."""
        key = (id(reference), mode, k)
        hit = self._reference_topk.get(key)
        if hit is None or hit[0] is not reference:
            hit = (reference, ir_topk(reference, self.sample_users, k, mode))
            self._reference_topk[key] = hit
        return hit[1]

    @staticmethod
    def from_truth(truth: tuple[np.ndarray, np.ndarray], num_users: int, sample: int = 2000,
                   seed: int = 0, margin: float | None = None) -> GuardData:
        rng = np.random.default_rng(seed)
        users = np.arange(num_users)
        if users.size > sample:
            users = np.sort(rng.choice(users, sample, replace=False))
        return GuardData(truth, users, margin, seed)

    def reference_recall(self, reference: IR, users: np.ndarray, mode: str, k: int) -> np.ndarray:
        """``reference``'s Recall@``k`` of each of ``users`` (the labelled ones) in ``mode``, once."""
        key = (id(reference), mode, k)
        hit = self._reference_recall.get(key)
        if hit is None or hit[0] is not reference:
            hit = (reference, recall_per_user(ir_topk(reference, users, k, mode), users, self.truth, k))
            self._reference_recall[key] = hit
        return hit[1]


def measure(ir: IR, reference: IR, data: GuardData, k: int = 20) -> dict[str, float]:
    """Recall/NDCG@k per mode and top-k agreement with ``reference``, as flat ``mode/metric`` keys;
    with ``data.margin``, also the relative Recall@k drop (``recall@k_drop``) and its bootstrap
    upper bound (``recall@k_drop_bound``)."""
    out: dict[str, float] = {}
    users = users_with_items(data.truth)
    for mode in ir.modes:
        if users.size:
            top = ir_topk(ir, users, k, mode)
            for key, v in ranking_metrics(top, users, data.truth, (k,)).items():
                out[f"{mode}/{key}"] = v
            if data.margin is not None and ir is not reference:
                out[f"{mode}/recall@{k}_drop"], out[f"{mode}/recall@{k}_drop_bound"] = paired_drop_bound(
                    recall_per_user(top, users, data.truth, k), data.reference_recall(reference, users, mode, k),
                    data.margin, seed=data.seed)
        ref = data.reference_topk(reference, k, mode)
        mine = ref if ir is reference else ir_topk(ir, data.sample_users, k, mode)
        out[f"{mode}/agreement@{k}"] = topk_agreement(mine, ref)
    return out


def check(metrics: dict[str, float], reference_metrics: dict[str, float], modes: tuple[str, ...],
          max_recall_drop: float, min_agreement: float | None, k: int = 20, *,
          use_bound: bool = True) -> list[str]:
    """The guard's verdict: a list of violations (empty = pass). A drop's bootstrap upper bound
    (``mode/recall@k_drop_bound`` in ``metrics``, see :func:`measure`) must stay within budget
    too, unless ``use_bound`` is off."""
    problems = []
    for mode in modes:
        key = f"{mode}/recall@{k}"
        if key in metrics and reference_metrics.get(key, 0) > 0:
            drop = 1 - metrics[key] / reference_metrics[key]
            bound = metrics.get(f"{key}_drop_bound") if use_bound else None
            if drop > max_recall_drop:
                problems.append(f"{mode} Recall@{k} {metrics[key]:.4f} is {100 * drop:.1f}% below the float "
                                f"model's {reference_metrics[key]:.4f} (limit {100 * max_recall_drop:.1f}%)")
            elif bound is not None and bound > max_recall_drop:
                problems.append(f"{mode} Recall@{k} is {100 * drop:.1f}% below the float model's, but the "
                                f"upper bound of that drop over resampled users is {100 * bound:.1f}% "
                                f"(limit {100 * max_recall_drop:.1f}%)")
        agr = metrics.get(f"{mode}/agreement@{k}")
        if min_agreement is not None and agr is not None and agr < min_agreement:
            problems.append(f"{mode} top-{k} agreement {agr:.3f} is below --min-agreement {min_agreement}")
    return problems


def guard(ir: IR, reference: IR, data: GuardData, *, max_recall_drop: float = 0.02,
          min_agreement: float | None = None, force: bool = False,
          reference_metrics: dict[str, float] | None = None,
          use_bound: bool = True) -> tuple[IR, PassReport]:
    """Measure ``ir`` against the float ``reference``; raise :class:`GuardError` on a violation
    unless ``force`` (then the violation is recorded in the report and the IR's metrics).
    ``use_bound``: hold the drop's bootstrap bound to the budget too (see :func:`check`)."""
    ref = reference_metrics if reference_metrics is not None else measure(reference, reference, data)
    got = measure(ir, reference, data)
    problems = check(got, ref, ir.modes, max_recall_drop, min_agreement, use_bound=use_bound)
    if problems and not force:
        raise GuardError("accuracy guard refused: " + "; ".join(problems) + " (use --force to emit anyway)")
    report = PassReport(name="guard", params={"max_recall_drop": max_recall_drop, "margin": data.margin,
                                              "min_agreement": min_agreement, "forced": bool(problems)},
                        bytes_before=ir.nbytes, bytes_after=ir.nbytes, metrics_before=ref,
                        metrics_after=got, notes=problems)
    metrics = {**ir.metrics, "float": ref, "compiled": got, "guard_violations": problems,
               "guard": {"max_recall_drop": max_recall_drop, "recall_margin": data.margin}}
    return ir.with_pass(report, metrics=metrics), report


class Guard(Pass):
    """The accuracy guard as the last pass (see :func:`guard`): the IR passes through
    unchanged when it is within budget, with the verdict in the pass log and the IR's metrics.

    Args:
        reference (IR): the float model, in the same modes.
        data (GuardData): the held-out interactions and the user sample.
        max_recall_drop (float): the largest relative Recall@20 drop allowed per mode.
        min_agreement (float, optional): the smallest top-20 agreement allowed per mode.
        force (bool): record a violation instead of refusing.
        reference_metrics (dict, optional): the reference's metrics, if already measured.
        use_bound (bool): hold the drop's bootstrap bound to the budget, not only the drop.
    """

    name = "guard"
    measured = False  # it measures itself, against the reference

    def __init__(self, reference: IR, data: GuardData, *, max_recall_drop: float,
                 min_agreement: float | None, force: bool,
                 reference_metrics: dict[str, float] | None = None, use_bound: bool = True) -> None:
        self.reference, self.data = reference, data
        self.options = dict(max_recall_drop=max_recall_drop, min_agreement=min_agreement,
                            force=force, reference_metrics=reference_metrics, use_bound=use_bound)

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return guard(ir, self.reference, self.data, **self.options)
