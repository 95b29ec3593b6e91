r"""The MLP head's tables, and how much each hidden neuron matters: shared by the head passes.

Importance of hidden neuron ``j`` is either ``activation``: the mean absolute contribution
``|w2_j| · E[relu(h_j)]`` over a calibration sample of (user, item) pairs (users' training items
and as many random items), or ``magnitude``: ``|w2_j| · ‖W1[:, j]‖`` (both halves of the first
layer; the item half is recovered from ``mlp_item = item · W1_item`` by least squares).
"""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, Table

IMPORTANCE = ("activation", "magnitude")


def kept_count(keep: float | int, total: int, what: str) -> int:
    n = int(round(keep * total)) if isinstance(keep, float) else int(keep)
    if not 1 <= n <= total:
        raise ValueError(f"cannot keep {keep} of {total} {what}: need between 1 and {total}")
    return n


def head_tables(ir: IR) -> dict[str, np.ndarray]:
    if ir.scorer.get("kind") != "mlp":
        raise ValueError(f"this IR has a {ir.scorer.get('kind')!r} scorer, not an MLP head")
    return {n: ir.tables[n].dequantize() for n in ("mlp_item", "mlp_w1_user", "mlp_b1", "mlp_w2", "mlp_b2")}


def item_weight(ir: IR, t_item: np.ndarray) -> np.ndarray:
    """``W1_item`` [d, h] such that ``item @ W1_item ≈ mlp_item`` (exact for a full-rank item table)."""
    e = ir.tables["item"].dequantize().astype(np.float64)
    return np.linalg.lstsq(e, t_item.astype(np.float64), rcond=None)[0].astype(np.float32)


def calibration_pairs(ir: IR, sample_users: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(users, items): a sample of users' training items plus as many uniformly random items."""
    rng = np.random.default_rng(seed)
    lens = np.diff(ir.seen_indptr)
    users = np.flatnonzero(lens > 0)
    if users.size > sample_users:
        users = np.sort(rng.choice(users, sample_users, replace=False))
    pu = np.concatenate([np.full(lens[u], u) for u in users]) if users.size else np.zeros(0, np.int64)
    pi = np.concatenate([ir.seen(int(u)) for u in users]) if users.size else np.zeros(0, np.int64)
    ru = rng.choice(users, pu.size) if users.size else pu
    ri = rng.integers(0, ir.num_items, pu.size)
    return np.concatenate([pu, ru]).astype(np.int64), np.concatenate([pi, ri]).astype(np.int64)


def head_importance(ir: IR, method: str = "activation", sample_users: int = 512, seed: int = 0) -> np.ndarray:
    """One score per hidden neuron of the MLP head (higher = keep)."""
    if method not in IMPORTANCE:
        raise ValueError(f"unknown importance {method!r}; choose one of {IMPORTANCE}")
    t = head_tables(ir)
    w2 = np.abs(t["mlp_w2"][:, 0])
    if method == "magnitude":
        w1 = np.concatenate([t["mlp_w1_user"], item_weight(ir, t["mlp_item"])])
        return w2 * np.linalg.norm(w1, axis=0)
    users, items = calibration_pairs(ir, sample_users, seed)
    u = ir.tables["user"].dequantize() if "user" in ir.tables else None
    if u is None:
        from edgerec.scoring import history_vectors

        uv = history_vectors(ir, np.unique(users))
        u = np.zeros((ir.num_users, uv.shape[1]), np.float32)
        u[np.unique(users)] = uv
    h = np.maximum(u[users] @ t["mlp_w1_user"] + t["mlp_item"][items] + t["mlp_b1"], 0)
    return w2 * h.mean(0)


def slice_head(ir: IR, keep_idx: np.ndarray) -> dict[str, Table]:
    t = head_tables(ir)
    tables = dict(ir.tables)
    tables.update(mlp_item=Table(np.ascontiguousarray(t["mlp_item"][:, keep_idx])),
                  mlp_w1_user=Table(np.ascontiguousarray(t["mlp_w1_user"][:, keep_idx])),
                  mlp_b1=Table(np.ascontiguousarray(t["mlp_b1"][:, keep_idx])),
                  mlp_w2=Table(np.ascontiguousarray(t["mlp_w2"][keep_idx])),
                  mlp_b2=Table(t["mlp_b2"]))
    return tables
