r"""FAISS baselines: the indexes engineers serve embeddings with, over the same final vectors.

Each index holds the item vectors of the float32 numpy reference artifact (full width, every
item; not the pruned width of a compiled artifact) and answers a lookup request the way the
runtime does: the user's final vector as the query, batch 1, one thread, the user's training
items excluded by over-fetching :math:`k + |\text{seen}|` neighbours and filtering, all inside
the timed call. Indexes:

- ``IndexFlatIP``: exact float32 inner product (what edgerec's float32 model computes);
- ``IndexScalarQuantizer`` SQ8 and SQ4: 8 / 4 bits per value, trained ranges per dimension;
- ``IndexPQ``: product quantization with :math:`M` sub-vectors (``M`` divides the width) whose
  codes take about the bytes per item of the compiled artifact's item table ("equal bytes").

Bytes are the serialized index (codes plus codebooks); ``init_ms`` is reading it back.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from edgerec.benchmark.baselines.child import child_main, run_child
from edgerec.benchmark.errors import BenchError
from edgerec.benchmark.measure import measure_callable

K = 20
INPUT_POOL = 512  # distinct request users, cycled through (as device_bench samples them)


def faiss_baselines(reference: Path, *, eval_file: Path | None, item_bytes: int | None,
                    requests: int, warmup: int, threads: int) -> list[dict[str, Any]]:
    """:func:`measure_faiss` in a fresh process; bench baselines (one per index).

    Args:
        reference: the float32 numpy reference artifact (its tables are the vectors indexed).
        eval_file: held-out users for Recall/NDCG@20 (default: the artifact's ``eval.json``).
        item_bytes: bytes of the compiled artifact's item table, which sizes the PQ codes
            (None: a quarter of the float32 table).
        requests: timed requests per index.
        warmup: untimed requests before timing.
        threads: FAISS (OpenMP) threads.
    """
    return run_child(__name__, [str(reference), str(eval_file or ""), str(item_bytes or 0),
                                str(requests), str(warmup), str(threads)], "FAISS")


def pq_shape(dim: int, num_items: int, item_bytes: int | None) -> tuple[int, int]:
    """``(M, nbits)`` of the PQ index whose codes are nearest ``item_bytes`` per catalogue.

    ``nbits`` is 8 unless the catalogue is too small to train 256 centroids per sub-vector;
    ``M`` is the divisor of ``dim`` whose code size ``M * nbits / 8`` bytes per item is nearest
    the target (the smaller one on a tie).

    Args:
        dim: the vectors' width.
        num_items: items in the catalogue (the PQ training set).
        item_bytes: bytes to match over the whole catalogue (None: ``dim`` bytes per item, a
            quarter of float32).
    """
    nbits = max(1, min(8, int(math.log2(max(2, num_items)))))
    target = (item_bytes / num_items) if item_bytes else dim
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    m = min(divisors, key=lambda m: (abs(m * nbits / 8 - target), m))
    return m, nbits


def top_k_unseen(index: Any, query: Any, seen: Any, k: int) -> list[int]:
    """The ``k`` best items for ``query`` that are not in ``seen``: over-fetch, then filter.

    Args:
        index: a FAISS index over the item vectors (row ``i`` is item ``i``).
        query: the user vector, float32 ``[1, d]``.
        seen: item indices to exclude (the user's training items).
        k: how many to return (fewer only if the catalogue runs out).
    """
    _, found = index.search(query, min(index.ntotal, k + len(seen)))
    skip = set(seen.tolist())
    return [i for i in found[0].tolist() if i >= 0 and i not in skip][:k]


def _indexes(faiss: Any, dim: int, num_items: int, item_bytes: int | None
             ) -> list[tuple[str, str, Any]]:
    ip = faiss.METRIC_INNER_PRODUCT
    sq = faiss.ScalarQuantizer
    m, nbits = pq_shape(dim, num_items, item_bytes)
    return [("FAISS IndexFlatIP", "float32", faiss.IndexFlatIP(dim)),
            ("FAISS IndexScalarQuantizer SQ8", "SQ8", faiss.IndexScalarQuantizer(dim, sq.QT_8bit, ip)),
            ("FAISS IndexScalarQuantizer SQ4", "SQ4", faiss.IndexScalarQuantizer(dim, sq.QT_4bit, ip)),
            (f"FAISS IndexPQ PQ{m}x{nbits}", f"PQ{m}x{nbits}", faiss.IndexPQ(dim, m, nbits, ip))]


def measure_faiss(reference: Path, eval_file: Path | None, item_bytes: int | None,
                  requests: int, warmup: int, threads: int, seed: int = 0) -> list[dict[str, Any]]:
    """Build, time and score every index of this module's list, in this process.

    Args:
        reference: the float32 numpy reference artifact.
        eval_file: held-out users (default: the artifact's ``eval.json``).
        item_bytes: the compiled item table's bytes, which size the PQ codes.
        requests: timed requests per index.
        warmup: untimed requests before timing.
        threads: FAISS threads.
        seed: seed of the sampled request users.
    """
    import numpy as np

    from device_bench.evalfile import EvalFileError, agreement, read_eval, recall_ndcg
    from runtime.artifact import load_artifact
    from runtime.errors import RuntimeErrorBase

    try:
        import faiss
    except ImportError:
        raise BenchError("the FAISS baselines need faiss-cpu (pip install 'edgerec[compiler]')") from None
    try:
        art = load_artifact(reference)
    except RuntimeErrorBase as e:
        raise BenchError(f"FAISS baselines: {e}") from None
    m = art.manifest
    if m["target"] != "numpy" or m["quantization"]["weights"] != "float32" \
            or "user" not in art.tables or "item" not in art.tables \
            or (m.get("scorer") or {}).get("kind", "dot") != "dot":
        raise BenchError(f"FAISS baselines: {reference} is not a float32 numpy artifact with "
                         "user and item tables and a dot-product scorer")
    n_items = art.num_items
    items = np.ascontiguousarray(art.tables["item"][0][:n_items], dtype=np.float32)
    users = np.ascontiguousarray(art.tables["user"][0][: art.num_users], dtype=np.float32)
    dim = items.shape[1]
    path = eval_file or (reference / m["eval"] if m.get("eval") else None)
    if path is None:
        raise BenchError(f"FAISS baselines: no evaluation file ({reference} has no eval.json)")
    try:
        records = read_eval(path).records
    except EvalFileError as e:
        raise BenchError(f"FAISS baselines: {e}") from None
    user_index = {u: i for i, u in enumerate(art.user_ids)}
    scored = [(user_index[r.user], r) for r in records if r.user in user_index]
    if not scored:
        raise BenchError(f"FAISS baselines: no user of {path} is in {reference}")
    pool = np.random.default_rng(seed).integers(0, art.num_users, min(INPUT_POOL, 1 + warmup + requests))
    faiss.omp_set_num_threads(threads)
    item_ids = art.item_ids

    out = []
    for name, quant, index in _indexes(faiss, dim, n_items, item_bytes):
        if not index.is_trained:
            index.train(items)
        index.add(items)
        blob = faiss.serialize_index(index)
        t0 = time.perf_counter()
        index = faiss.deserialize_index(blob)
        init_ms = (time.perf_counter() - t0) * 1e3

        def recommend(u: int, index: Any = index) -> list[int]:
            return top_k_unseen(index, users[u: u + 1], art.seen(u), K)

        lat = measure_callable(lambda i, rec=recommend: rec(int(pool[i % pool.size])),
                               requests, warmup)
        recall, ndcg, agree = [], [], []
        for u, r in scored:
            ranked = [item_ids[i] for i in recommend(u)]
            rc, nd = recall_ndcg(ranked, r.test, K)
            recall.append(rc)
            ndcg.append(nd)
            if r.reference.get("lookup"):
                agree.append(agreement(ranked, r.reference["lookup"], K))
        out.append({
            "name": name, "target": "faiss", "quantization": quant, "file_bytes": len(blob),
            "init_ms": init_ms, "modes": {"lookup": lat},
            "accuracy": {"lookup": {"recall@20": float(np.mean(recall)),
                                    "ndcg@20": float(np.mean(ndcg)),
                                    "agreement@20": float(np.mean(agree)) if agree else None}},
            "note": f"FAISS {faiss.__version__} over the float32 reference's full-width vectors "
                    f"({dim} dims); seen items excluded by over-fetch and filter, inside the timed "
                    f"call; accuracy on {len(scored)} users of the eval sample"})
    return out


def _main(argv: list[str]) -> list[dict[str, Any]]:
    reference, eval_file, item_bytes, requests, warmup, threads = argv
    return measure_faiss(Path(reference), Path(eval_file) if eval_file else None,
                         int(item_bytes) or None, int(requests), int(warmup), int(threads))


if __name__ == "__main__":
    child_main(_main)
