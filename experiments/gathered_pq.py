"""Do the gathered tables (``user``, ``history_item``) stand a coarser format than the scored one?

    OMP_NUM_THREADS=1 nice -n 5 python experiments/gathered_pq.py --ckpt CKPT --out OUT.json

A device scores every item against ``item`` (a matmul over the whole table), but it only
*gathers* a row of ``user`` (lookup) or a user's history rows of ``history_item`` (history), so
decoding those rows costs next to nothing whatever their format. This measures, at the IR level
(numpy), what the guard would see on the valid split (Recall@20 drop and its 0.95 bootstrap
bound, per mode, against the float model) when ``item`` stays int4 and the gathered tables are
stored as PQ codes of unit rows plus a float16 norm (``pq-norm`` of docs/compression.md), with
subspaces of 2, 3 (mixed 3/2) or 4 dims, in the IR's basis ("raw", at the full width) and after
the prune's rotation ("spread"). The codebooks are faiss k-means (this measurement chose the
format; ``edgerec.passes.codebook`` then implemented it without faiss). A benchmark: figures go
in docs/compression.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edgerec.checkpoint import load_checkpoint
from edgerec.ir import Table
from edgerec.lowering import lower
from edgerec.passes.guard import GuardData, measure
from edgerec.passes.prune import prune
from edgerec.passes.quantize import quantize

GATHERED = ("user", "history_item")


def blocks_for(dim: int, sub: float) -> list[int]:
    """Subspace sizes summing to ``dim`` with ``dim / sub`` subspaces (3 -> mixed 3s and 2s)."""
    m = round(dim / sub)
    base, extra = divmod(dim, m)
    return [base + 1] * extra + [base] * (m - extra)


def pq_norm(values: np.ndarray, sizes: list[int], seed: int = 0) -> tuple[np.ndarray, int]:
    import faiss

    x = np.ascontiguousarray(values, np.float32)
    length = np.linalg.norm(x, axis=1, keepdims=True)
    unit = x / np.where(length > 0, length, 1.0)
    out = np.empty_like(unit)
    col = 0
    for size in sizes:  # one 8-bit code per subspace, each with its own 256 centroids
        part = np.ascontiguousarray(unit[:, col:col + size])
        km = faiss.Kmeans(size, 256, niter=25, seed=seed, verbose=False)
        km.train(part)
        _, code = km.index.search(part, 1)
        out[:, col:col + size] = km.centroids[code[:, 0]]
        col += size
    fit = (x * out).sum(axis=1) / np.maximum((out * out).sum(axis=1), 1e-30)
    out *= fit.astype(np.float16).astype(np.float32)[:, None]
    nbytes = x.shape[0] * (len(sizes) + 2) + 256 * values.shape[1] * 2
    return out, nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--dims", type=int, nargs="+", default=[64])
    ap.add_argument("--subspaces", type=float, nargs="+", default=[2, 8 / 3, 3, 4])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    ckpt = load_checkpoint(args.ckpt)
    raw, _ = lower(ckpt, ("lookup", "history"), "mean")
    valid = ckpt.data.valid.csr(ckpt.data.num_users)
    gdata = GuardData.from_truth(valid, raw.num_users, margin=0.95)
    ref = measure(raw, raw, gdata)
    rows = []

    def row(label: str, ir, extra_bytes: int = 0) -> None:
        t0 = time.perf_counter()
        m = measure(ir, raw, gdata)
        r = {"label": label, "bytes": ir.nbytes + extra_bytes}
        for mode in ("lookup", "history"):
            r[mode] = {"drop": m[f"{mode}/recall@20_drop"], "bound": m[f"{mode}/recall@20_drop_bound"],
                       "agreement": m[f"{mode}/agreement@20"], "recall": m[f"{mode}/recall@20"]}
        rows.append(r)
        print(f"{label:40s} {r['bytes']:>10,} B  " + "  ".join(
            f"{mode} {100 * r[mode]['drop']:.2f}% ({100 * r[mode]['bound']:.2f}%) agr {r[mode]['agreement']:.3f}"
            for mode in ("lookup", "history")) + f"  {time.perf_counter() - t0:.0f}s", flush=True)
        args.out.write_text(json.dumps({"float": ref, "rows": rows}, indent=1))

    for dim in args.dims:
        bases = {"raw": raw} if dim == raw.dim else {}
        bases["spread"] = prune(raw, dim)[0]
        for name, base in bases.items():
            q = quantize(base, "int4")[0]
            row(f"{dim}d {name} int4", q)
            for sub in args.subspaces:
                sizes = blocks_for(dim, sub)
                tables, extra = dict(q.tables), 0
                for t in GATHERED:
                    dec, nb = pq_norm(base.tables[t].dequantize(), sizes)
                    tables[t] = Table(dec)
                    extra += nb
                ir = q.replace(tables=tables)
                # nbytes counts the float tables: subtract them, add the PQ bytes
                extra -= sum(ir.tables[t].nbytes for t in GATHERED)
                row(f"{dim}d {name} int4 item, pq-norm M={len(sizes)} gathered", ir, extra)


if __name__ == "__main__":
    main()
