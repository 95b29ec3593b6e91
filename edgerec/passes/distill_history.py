"""Train the history tables toward the lookup model, for users with long histories.

History mode folds a user's items on the device, ``v = n^-1/2 Σ_{i ∈ hist(u)} H_i``, and has no
per-user parameter; lookup mode serves ``user = user_base + fold(H)``, where the user's own base
vector carries part of the signal. The longer the histories, the more of it sits in the base
(docs/benchmarks.md, "History mode on long histories"): history mode then falls well short of
lookup, and it falls short in the float model already, so no compression setting recovers it.

This pass changes ``history_item`` only, by distillation: each user's history-mode ranking is
pulled toward the same user's *lookup* ranking (listwise KL over every item, the user's seen
items masked, as :func:`edgerec.passes.distill.distill` does). It then re-derives
``user_base = user - fold(H)``, so the ``user`` and ``item`` tables, and with them lookup mode,
stay exactly as they were, and the relation every later pass relies on still holds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgerec.ir import IR, PassReport, Table
from edgerec.passes.base import Pass
from edgerec.passes.distill import _MASK, _Fold, _probe, _seen_pairs


def distill_history(ir: IR, *, epochs: int = 30, lr: float = 1e-2, temperature: float = 0.5,
                    batch_size: int = 256, sample_users: int | None = 8192, seed: int = 0,
                    log: Callable[[str], None] = lambda _m: None) -> tuple[IR, PassReport]:
    r"""Fine-tune ``history_item`` so that history mode ranks like lookup mode.

    Minimises, over users :math:`u` with training items,
    :math:`\mathrm{KL}(\mathrm{softmax}(U_u I^\top/\tau) \,\|\, \mathrm{softmax}(\mathrm{fold}_u(H) I^\top/\tau))`
    with :math:`\tau` = ``temperature`` × the std of the user's lookup scores; ``user`` and
    ``item`` are fixed and ``user_base`` becomes :math:`U - \mathrm{fold}(H)`.

    Args:
        ir (IR): a float LightGCN IR with both serving modes and a dot scorer.
        epochs (int): passes over the sampled users.
        lr (float): Adam's learning rate (decayed linearly to zero).
        temperature (float): the softmax temperature, relative to each user's score spread.
        batch_size (int): users per step.
        sample_users (int, optional): users per epoch, a fixed seeded subset (:obj:`None`: all).
        seed (int): the seed of the user sample and the visiting order.
        log (callable, optional): progress lines.
    """
    if ir.scorer.get("kind") != "dot" or ir.history_kind != "lightgcn" \
            or not {"user", "history_item", "user_base"} <= set(ir.tables):
        raise ValueError("distill_history needs a LightGCN IR with a dot scorer and both serving modes")
    if epochs < 1 or lr <= 0 or batch_size < 1 or temperature <= 0:
        raise ValueError("epochs must be >= 1 and lr, batch_size, temperature positive")
    rng = np.random.default_rng(seed)
    fold = _Fold(ir.seen_indptr, ir.seen_indices)
    users = np.flatnonzero(np.diff(ir.seen_indptr) > 0)
    if sample_users is not None and sample_users < users.size:
        users = np.sort(rng.choice(users, sample_users, replace=False))
    U = torch.from_numpy(ir.tables["user"].dequantize())
    I = torch.from_numpy(ir.tables["item"].dequantize())
    H0 = torch.from_numpy(ir.tables["history_item"].dequantize())
    dH = torch.nn.Parameter(torch.zeros_like(H0))
    opt = torch.optim.Adam([dH], lr=lr)
    total_steps = max(1, epochs * -(-users.size // batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / total_steps))

    def batch_loss(b: np.ndarray) -> torch.Tensor:
        rows, cols = _seen_pairs((ir.seen_indptr, ir.seen_indices), b)
        with torch.no_grad():
            s_ref = U[torch.from_numpy(b)] @ I.T
            tau = temperature * s_ref.std(dim=1, keepdim=True).clamp_min(1e-8)
            log_p = F.log_softmax((s_ref / tau).index_put((rows, cols), torch.tensor(_MASK)), dim=1)
        s = (fold(H0 + dH, b) @ I.T / tau).index_put((rows, cols), torch.tensor(_MASK))
        return F.kl_div(F.log_softmax(s, dim=1), log_p, log_target=True, reduction="batchmean")

    probe_loss = _probe(users, batch_size, batch_loss)
    before = probe_loss()
    for epoch in range(epochs):
        order = rng.permutation(users)
        for s in range(0, order.size, batch_size):
            opt.zero_grad()
            batch_loss(np.sort(order[s:s + batch_size])).backward()
            opt.step()
            sched.step()
        log(f"distill_history: epoch {epoch + 1}/{epochs}")
    after = probe_loss()
    with torch.no_grad():
        H = H0 + dH.detach()
        everyone = np.arange(ir.num_users)
        folded = torch.cat([fold(H, everyone[s:s + 4096]) for s in range(0, ir.num_users, 4096)])
    tables = {**ir.tables, "history_item": Table(H.numpy().astype(np.float32)),
              "user_base": Table((U - folded).numpy().astype(np.float32))}
    new = ir.replace(tables=tables)
    new.validate()
    report = PassReport(
        name="distill_history",
        params={"epochs": epochs, "lr": lr, "temperature": temperature, "batch_size": batch_size,
                "sample_users": int(users.size), "seed": seed},
        bytes_before=ir.nbytes, bytes_after=new.nbytes, metrics_before={"kl": before},
        metrics_after={"kl": after},
        notes=[f"history-to-lookup KL on up to 512 users: {before:.4f} -> {after:.4f}"])
    return new.with_pass(report), report


class DistillHistory(Pass):
    """Pull history mode toward lookup mode by training ``history_item`` (see
    :func:`distill_history`); lookup mode is left exactly as it was.

    Args:
        epochs (int): passes over the sampled users.
        sample_users (int, optional): users per epoch (:obj:`None`: all).
        log (callable, optional): progress lines.
    """

    name = "distill_history"

    def __init__(self, *, epochs: int = 30, sample_users: int | None = 8192,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.options = dict(epochs=epochs, sample_users=sample_users, log=log)

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return distill_history(ir, **self.options)
