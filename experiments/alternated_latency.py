"""Per-request latency of several artifacts, measured in alternating rounds in one process.

    OMP_NUM_THREADS=1 python experiments/alternated_latency.py ART_A ART_B ... [--rounds 7]

``edgerec bench`` runs each artifact in its own process one after the other, so a busy spell on
a shared machine lands on one row (two bench runs of the same files here differed by 40% in
one row's history p50). This loads every artifact once (``runtime.load``, one thread, the
default delegates), then in each round times 200 history requests (50 random items) and 200
lookup requests on each artifact in turn, and reports each artifact's median over the rounds
of the mean ms per request. The id mapping and top-k list building of the Python runtime are
inside the timing, as for an application. A benchmark: figures go in docs/.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import runtime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    recs = [runtime.load(p, num_threads=1) for p in args.artifacts]
    rng = np.random.default_rng(0)
    ids, users = recs[0].artifact.item_ids, recs[0].artifact.user_ids
    hists = [[ids[int(i)] for i in rng.choice(len(ids), 50, replace=False)] for _ in range(args.requests)]
    who = [users[int(i)] for i in rng.choice(len(users), args.requests)]
    res: dict[str, dict[str, list[float]]] = {p: {"history": [], "lookup": []} for p in args.artifacts}
    for _ in range(args.rounds):
        for p, r in zip(args.artifacts, recs, strict=True):
            for h in hists[:20]:
                r.recommend_from_history(h, 50)
            t = time.perf_counter()
            for h in hists:
                r.recommend_from_history(h, 50)
            res[p]["history"].append((time.perf_counter() - t) / len(hists) * 1e3)
            t = time.perf_counter()
            for u in who:
                r.recommend(u, 50)
            res[p]["lookup"].append((time.perf_counter() - t) / len(who) * 1e3)
    print(json.dumps({p: {m: round(float(np.median(v)), 4) for m, v in modes.items()}
                      for p, modes in res.items()}, indent=1))


if __name__ == "__main__":
    main()
