"""Compression-aware fine-tuning: distil a reduced IR back towards the float model's rankings.

SVD truncation (``passes/prune.py``) keeps the best rank-``r`` approximation of the *whole* score
matrix, but a device only ever looks at each user's top of the list. This pass fine-tunes the
reduced tables so that, user by user, the softmax over the compiled model's item scores matches
the float model's (listwise KL, seen items masked out as the device masks them), on the same
serving modes the IR ships.

The user side must stay one linear program: a lookup user vector is ``user_base + n^-1/2 Σ H_i``
over the user's training items, and history mode runs the same fold on the device. The pass
therefore trains *offsets* ``ΔH`` (``history_item``), ``ΔB`` (``user_base``) and the ``item``
table jointly, and writes ``user + ΔB + fold(ΔH)``: whatever relation the tables had (exact for a
LightGCN precompute) is kept exactly. An IR without history tables trains ``user`` directly.

``quant_bits`` (8 or 4) makes it quantization-aware: every shipped table is fake-quantized per
row in the forward pass with a straight-through gradient, using the same scale rule as
``passes/quantize.py``; the output is still float32, to be quantized by that pass afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgerec.ir import IR, PassReport, Table
from edgerec.passes.base import Pass
from edgerec.passes.quantize import _INT4_CLIP, INT4_MAX

_MASK = -1e4  # logit of a masked (seen) item after the temperature: exp() is exactly 0


def _check(ir: IR, reference: IR) -> None:
    if ir.scorer.get("kind") != "dot" or reference.scorer.get("kind") != "dot":
        raise ValueError("distill needs dot-product scorers on both IRs")
    if (ir.num_users, ir.num_items) != (reference.num_users, reference.num_items):
        raise ValueError(f"IR has {ir.num_users} users x {ir.num_items} items, the reference "
                         f"{reference.num_users} x {reference.num_items}: they must match")
    if "history" in ir.modes and ir.history_kind != "lightgcn":
        raise ValueError(f"distill supports the lightgcn history fold, not {ir.history_kind!r}")
    missing = [m for m in ir.modes if m not in reference.modes]
    if missing:
        raise ValueError(f"the reference IR lacks the modes {missing}")


def _fake_quant(x: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Per-row symmetric fake quantization with a straight-through gradient."""
    if bits is None:
        return x
    with torch.no_grad():
        amax = x.abs().amax(dim=1, keepdim=True)
        if bits == 8:
            scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
            q = torch.clamp(torch.round(x / scale), -127, 127) * scale
        else:  # int4: the quantizer's clipping search, row by row
            q, best = x.clone(), torch.full_like(amax, torch.inf)
            for c in _INT4_CLIP:
                scale = torch.where(amax > 0, c * amax / INT4_MAX, torch.ones_like(amax))
                cand = torch.clamp(torch.round(x / scale), -INT4_MAX, INT4_MAX) * scale
                err = ((cand - x) ** 2).sum(dim=1, keepdim=True)
                better = err < best
                q = torch.where(better, cand, q)
                best = torch.where(better, err, best)
    return x + (q - x).detach()


class _Fold:
    """``n^-1/2 Σ_{i ∈ seen(u)} H_i`` for a batch of users, differentiable in ``H``."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        self.indptr, self.indices = indptr, indices

    def __call__(self, H: torch.Tensor, users: np.ndarray) -> torch.Tensor:
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lens = ends - starts
        seg = torch.from_numpy(np.repeat(np.arange(users.size), lens))
        flat = torch.from_numpy(self.indices[np.concatenate(
            [np.arange(s, e) for s, e in zip(starts, ends, strict=True)])].astype(np.int64)) \
            if lens.sum() else torch.zeros(0, dtype=torch.int64)
        w = torch.from_numpy(np.where(lens > 0, np.maximum(lens, 1) ** -0.5, 0.0).astype(np.float32))
        out = H.new_zeros((users.size, H.shape[1]))
        return out.index_add(0, seg, H[flat]) * w[:, None]


def _teacher_vectors(reference: IR, fold: _Fold) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if "lookup" in reference.modes:
        out["lookup"] = torch.from_numpy(reference.tables["user"].dequantize())
    if "history" in reference.modes:
        H = torch.from_numpy(reference.tables["history_item"].dequantize())
        out["history"] = torch.cat([fold(H, np.arange(s, min(s + 4096, reference.num_users)))
                                    for s in range(0, reference.num_users, 4096)])
    return out


def distill(ir: IR, reference: IR, *, epochs: int = 3, lr: float = 1e-3, sample_users: int | None = None,
            batch_size: int = 256, temperature: float = 0.25, quant_bits: int | None = None,
            seed: int = 0, log: Callable[[str], None] = lambda _m: None) -> tuple[IR, PassReport]:
    """Fine-tune ``ir``'s tables (any width) to rank like the float ``reference``.

    Each step takes ``batch_size`` users, scores every item with both models in every mode of
    ``ir``, masks each user's seen items and minimises ``KL(softmax(s_ref/τ) || softmax(s/τ))``
    with ``τ = temperature × std`` of the user's reference scores (so the loss looks at the top
    of each list whatever the embeddings' scale). ``sample_users``: how many users (a fixed
    random subset) an epoch visits; ``None`` = all users with training items.
    """
    _check(ir, reference)
    if epochs < 0 or lr <= 0 or batch_size < 1 or temperature <= 0:
        raise ValueError("epochs must be >= 0 and lr, batch_size, temperature positive")
    if quant_bits not in (None, 4, 8):
        raise ValueError(f"quant_bits must be None, 4 or 8, got {quant_bits!r}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fold = _Fold(ir.seen_indptr, ir.seen_indices)
    users = np.flatnonzero(np.diff(ir.seen_indptr) > 0)
    if sample_users is not None and sample_users < users.size:
        users = np.sort(rng.choice(users, sample_users, replace=False))
    if users.size == 0:
        raise ValueError("distill needs users with training items")
    teacher = _teacher_vectors(reference, fold)
    ref_item = torch.from_numpy(reference.tables["item"].dequantize())
    t0 = {n: torch.from_numpy(t.dequantize()) for n, t in ir.tables.items()}
    folded = "history_item" in t0
    item = torch.nn.Parameter(t0["item"].clone())
    params: dict[str, torch.nn.Parameter] = {"item": item}
    if folded:
        params["d_hist"] = torch.nn.Parameter(torch.zeros_like(t0["history_item"]))
        if "user_base" in t0:
            params["d_base"] = torch.nn.Parameter(torch.zeros_like(t0["user_base"]))
    elif "user" in t0:
        params["user"] = torch.nn.Parameter(t0["user"].clone())
    opt = torch.optim.Adam(params.values(), lr=lr)
    total_steps = max(1, epochs * -(-users.size // batch_size))
    # linear decay to zero: late steps refine instead of bouncing around the (small) optimum
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / total_steps))
    seen = (ir.seen_indptr, ir.seen_indices)

    def student(mode: str, b: np.ndarray) -> torch.Tensor:
        if not folded:
            return _fake_quant(params["user"][torch.from_numpy(b)], quant_bits)
        H = t0["history_item"] + params["d_hist"]
        if mode == "history":
            return fold(_fake_quant(H, quant_bits), b)
        bi = torch.from_numpy(b)
        u = t0["user"][bi] + fold(params["d_hist"], b)
        if "d_base" in params:
            u = u + params["d_base"][bi]
        return _fake_quant(u, quant_bits)

    def batch_loss(b: np.ndarray) -> torch.Tensor:
        rows, cols = _seen_pairs(seen, b)
        I = _fake_quant(params["item"], quant_bits)
        loss = torch.zeros(())
        for mode in ir.modes:
            with torch.no_grad():
                s_ref = teacher[mode][torch.from_numpy(b)] @ ref_item.T
                tau = temperature * s_ref.std(dim=1, keepdim=True).clamp_min(1e-8)
                s_ref = (s_ref / tau).index_put((rows, cols), torch.tensor(_MASK))
                log_p = F.log_softmax(s_ref, dim=1)
            s = (student(mode, b) @ I.T / tau).index_put((rows, cols), torch.tensor(_MASK))
            loss = loss + F.kl_div(F.log_softmax(s, dim=1), log_p, log_target=True, reduction="batchmean")
        return loss

    probe_loss = _probe(users, batch_size, batch_loss)
    before = probe_loss()
    log(f"distill: {users.size} users, {epochs} epochs, KL before {before:.4f}")
    for epoch in range(epochs):
        order, total = rng.permutation(users), 0.0
        for s in range(0, order.size, batch_size):
            opt.zero_grad()
            loss = batch_loss(np.sort(order[s:s + batch_size]))
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * min(batch_size, order.size - s)
        log(f"distill: epoch {epoch + 1}/{epochs}, mean training KL {total / order.size:.4f}")
    after = probe_loss()
    run_params = {"epochs": epochs, "lr": lr, "sample_users": int(users.size), "batch_size": batch_size,
                  "temperature": temperature, "quant_bits": quant_bits, "seed": seed}
    tables = dict(ir.tables)
    if after > before:  # the fine-tune made things worse on its own objective: keep the input
        new = ir.replace()
        report = PassReport(name="distill", params={**run_params, "kept_input": True},
                            bytes_before=ir.nbytes, bytes_after=ir.nbytes, metrics_before={"kl": before},
                            metrics_after={"kl": before},
                            notes=[f"KL rose {before:.4f} -> {after:.4f}: input tables kept"])
        return new.with_pass(report), report
    with torch.no_grad():
        tables["item"] = Table(params["item"].detach().numpy().astype(np.float32).copy())
        if folded:
            dH = params["d_hist"].detach()
            tables["history_item"] = Table((t0["history_item"] + dH).numpy().astype(np.float32))
            if "user" in t0:
                all_users = np.arange(ir.num_users)
                du = torch.cat([fold(dH, all_users[s:s + 4096]) for s in range(0, ir.num_users, 4096)])
                if "d_base" in params:
                    du = du + params["d_base"].detach()
                tables["user"] = Table((t0["user"] + du).numpy().astype(np.float32))
            if "d_base" in params:
                tables["user_base"] = Table((t0["user_base"] + params["d_base"].detach()).numpy().astype(np.float32))
        elif "user" in params:
            tables["user"] = Table(params["user"].detach().numpy().astype(np.float32).copy())
    new = ir.replace(tables=tables)
    new.validate()
    report = PassReport(
        name="distill",
        params=run_params,
        bytes_before=ir.nbytes, bytes_after=new.nbytes,
        metrics_before={"kl": before}, metrics_after={"kl": after},
        notes=[f"listwise KL to the reference on {users.size} users: {before:.4f} -> {after:.4f}"])
    return new.with_pass(report), report


def _probe(users: np.ndarray, batch_size: int,
           batch_loss: Callable[[np.ndarray], torch.Tensor]) -> Callable[[], float]:
    """The mean loss over a fixed spread of at most 512 of ``users``: the before/after figure."""
    probe = users[:: max(1, users.size // 512)][:512]

    def probe_loss() -> float:
        with torch.no_grad():
            return float(np.mean([batch_loss(probe[s:s + batch_size]).item()
                                  for s in range(0, probe.size, batch_size)]))

    return probe_loss


def _seen_pairs(seen: tuple[np.ndarray, np.ndarray], b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    indptr, indices = seen
    starts, ends = indptr[b], indptr[b + 1]
    rows = np.repeat(np.arange(b.size), ends - starts)
    cols = indices[np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])] \
        if (ends - starts).sum() else np.zeros(0, np.int64)
    return torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(cols.astype(np.int64))


class Distill(Pass):
    """Fine-tune the tables to rank like the float ``reference`` (see :func:`distill`).

    The same input always gives the same output (the run is seeded), so a result is kept per
    input: the width search and the final compile distil each width once.

    Args:
        reference (IR): the float model whose rankings are the target.
        epochs (int): passes over the sampled users.
        lr (float): Adam's learning rate.
        temperature (float): the softmax temperature, relative to each user's score spread.
        sample_users (int, optional): users per epoch (:obj:`None`: all).
        quant_bits (int, optional): the rounding that follows (8, 4, or :obj:`None`).
        log (callable, optional): progress lines.
    """

    name = "distill"

    def __init__(self, reference: IR, *, epochs: int, lr: float, temperature: float,
                 sample_users: int | None, quant_bits: int | None,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.reference, self.log = reference, log
        self.options = dict(epochs=epochs, lr=lr, temperature=temperature,
                            sample_users=sample_users, quant_bits=quant_bits)
        self._done: dict[str, tuple[IR, PassReport]] = {}

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        key = _tables_key(ir)
        if key not in self._done:
            self._done[key] = distill(ir, self.reference, log=self.log, **self.options)
        tuned, report = self._done[key]
        return tuned.replace(passes=(*ir.passes, tuned.passes[-1])), report


def _tables_key(ir: IR) -> str:
    h = hashlib.sha256()
    for name in sorted(ir.tables):
        h.update(name.encode())
        h.update(np.ascontiguousarray(ir.tables[name].values).tobytes())
    return h.hexdigest()
