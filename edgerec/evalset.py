"""The evaluation sample that travels with an artifact (``export --with-eval``).

A seeded sample of held-out users, each with the history a device would hold (their most recent
training items, at most the model's history capacity), their test items, and the float model's
top-k in both modes for that same input, so device_bench can measure accuracy and drift on the
device with no dataset.
"""

from __future__ import annotations

import numpy as np

from edgerec.data import Interactions
from edgerec.ir import IR
from edgerec.scoring import history_vectors


def eval_records(float_ir: IR, data: Interactions, *, split: str = "test", users: int = 500,
                 history_capacity: int = 50, k: int = 20, seed: int = 0) -> list[dict[str, object]]:
    """Records for ``device_bench.evalfile``; ``float_ir`` is the uncompressed reference."""
    truth_ptr, truth_idx = data.split(split).csr(data.num_users)
    candidates = np.flatnonzero(np.diff(truth_ptr) > 0)
    candidates = candidates[np.diff(float_ir.seen_indptr)[candidates] > 0]
    rng = np.random.default_rng(seed)
    if candidates.size > users:
        candidates = np.sort(rng.choice(candidates, users, replace=False))
    # Histories as the device holds them: the last `history_capacity` training items.
    hist = [float_ir.seen(int(u))[-history_capacity:] for u in candidates]
    indptr = np.zeros(candidates.size + 1, np.int64)
    np.cumsum([h.size for h in hist], out=indptr[1:])
    flat = np.concatenate(hist) if hist else np.zeros(0, np.int32)
    hv = history_vectors(float_ir, np.arange(candidates.size), (indptr, flat))
    items = float_ir.tables["item"].dequantize()
    users_t = float_ir.tables["user"].dequantize()
    ids = float_ir.item_ids
    records = []
    for r, u in enumerate(candidates):
        seen = float_ir.seen(int(u))
        ref = {}
        for mode, vec, banned in (("lookup", users_t[u], seen), ("history", hv[r], hist[r])):
            s = items @ vec
            s[banned] = -np.inf
            top = np.argpartition(-s, k)[:k]
            top = top[np.argsort(-s[top], kind="stable")]
            ref[mode] = [ids[i] for i in top]
        records.append({
            "user": float_ir.user_ids[u],
            "history": [ids[i] for i in hist[r]],
            "test": [data.item_ids[i] for i in truth_idx[truth_ptr[u]:truth_ptr[u + 1]]],
            "reference": ref,
        })
    return records
