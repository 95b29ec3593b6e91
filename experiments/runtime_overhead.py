"""The runtime's own cost per call: ``rec.recommend(...)`` vs the bare interpreter call.

Builds a LastFM-sized random IR (1,885 users, 17,388 items, dim 32, int8), exports it to
TFLite and ONNX with ``exporters.export_ir``, then times, single-threaded, the p50 of

- bare: LiteRT set-tensors + invoke (the call the backend itself makes, without the signature
  runner's per-call allocation) / ONNX Runtime ``session.run`` on prepared arrays;
- runtime: ``rec.recommend(user_id, k=10)`` / ``rec.recommend_from_history(ids, k=10)``
  (id lookup, seen-item exclusion, padding, output checks, id mapping);
- python_only: the runtime calls with the model replaced by a replay of a recorded output,
  i.e. the runtime's own work without the interpreter's run-to-run variance.

Bare and runtime calls alternate call by call, so load from other processes hits both alike.

    python experiments/runtime_overhead.py --out runs/runtime_overhead.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def paired_p50_us(bare: Any, full: Any, n: int, warmup: int = 300) -> tuple[float, float]:
    """p50 of ``bare()`` and ``full()`` timed alternately, call by call, so that load from
    other processes on a shared machine hits both alike."""
    for _ in range(warmup):
        bare()
        full()
    tb, tf = [], []
    clock = time.perf_counter_ns
    for i in range(n):
        for fn, acc in ((bare, tb), (full, tf)) if i % 2 else ((full, tf), (bare, tb)):
            t0 = clock()
            fn()
            acc.append(clock() - t0)
    return statistics.median(tb) / 1000.0, statistics.median(tf) / 1000.0


class _Replay:
    """A stand-in backend returning one recorded output per mode."""

    name, thread_safe = "replay", True

    def __init__(self, backend: Any, lookup_feeds: dict[str, np.ndarray],
                 history_feeds: dict[str, np.ndarray]) -> None:
        self._l = backend.lookup(*lookup_feeds.values())
        self._h = backend.history(*history_feeds.values())

    def lookup(self, user: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._l

    def history(self, items: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._h


def measure(rec: Any, n: int, seed: int = 0) -> dict[str, Any]:
    """p50 of bare vs runtime calls for both modes of one loaded recommender."""
    rng = np.random.default_rng(seed)
    backend = rec._backend()
    art = rec.artifact
    users = rng.integers(0, rec.num_users, size=64)
    hists = [rng.choice(rec.num_items, size=10, replace=False).astype(np.int32) for _ in range(64)]
    E, C, pad = rec.exclude_capacity, rec.history_capacity, rec.num_items

    def lookup_feeds(u: int) -> dict[str, np.ndarray]:
        ex = np.full(E, pad, np.int32)
        seen = art.seen(int(u))[:E]
        ex[: seen.size] = seen
        return {"user": np.array([u], np.int32), "exclude": ex}

    def history_feeds(h: np.ndarray) -> dict[str, np.ndarray]:
        buf = np.full(C, pad, np.int32)
        buf[: h.size] = h
        return {"history": buf, "length": np.array([h.size], np.int32)}

    lf = [lookup_feeds(u) for u in users]
    hf = [history_feeds(h) for h in hists]
    if rec.backend_name in ("litert", "tflite"):
        # the fastest raw call: set tensors + invoke, as the backend itself calls the model
        # (the public signature runner re-allocates on every call, about 8 us more)
        from runtime.backends._tflite_common import _fast_call

        bare = {m: (lambda f, c=(_fast_call(backend.runner(m)) or backend.runner(m)): c(**f))
                for m in ("lookup", "history")}
    else:
        bare = {"lookup": lambda f, s=backend.session("lookup"): s.run(["scores", "items"], f),
                "history": lambda f, s=backend.session("history"): s.run(["scores", "items"], f)}
    uids = [art.user_ids[int(u)] for u in users]
    hids = [[art.item_ids[int(i)] for i in h] for h in hists]
    counter = {"bare": 0, "full": 0}

    def nxt(key: str) -> int:
        counter[key] = (counter[key] + 1) % 64
        return counter[key]

    out: dict[str, Any] = {}
    for mode, feeds, call in (
        ("lookup", lf, lambda: rec.recommend(uids[nxt("full")], k=10)),
        ("history", hf, lambda: rec.recommend_from_history(hids[nxt("full")], k=10)),
    ):
        b, r = paired_p50_us(lambda mode=mode, feeds=feeds: bare[mode](feeds[nxt("bare")]), call, n)
        out[mode] = {"bare_p50_us": round(b, 2), "runtime_p50_us": round(r, 2),
                     "overhead_p50_us": round(r - b, 2)}
    # The runtime's Python work alone: the same calls with the model replaced by a replay of
    # one real output per mode (immune to the interpreter's own run-to-run variance).
    replay = _Replay(backend, lf[0], hf[0])
    saved = rec._shared
    rec._shared = replay
    try:
        for mode, call in (("lookup", lambda: rec.recommend(uids[nxt("full")], k=10)),
                           ("history", lambda: rec.recommend_from_history(hids[nxt("full")], k=10))):
            out[mode]["python_only_p50_us"] = round(paired_p50_us(lambda: None, call, n)[1], 2)
    finally:
        rec._shared = saved
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--items", type=int, default=17388)
    ap.add_argument("--users", type=int, default=1885)
    ap.add_argument("--dim", type=int, default=32)
    args = ap.parse_args()

    import runtime
    from edgerec.passes.quantize import quantize
    from exporters import export_ir
    from tests.factories import make_ir

    ir = quantize(make_ir(num_users=args.users, num_items=args.items, dim=args.dim), "int8")[0]
    result: dict[str, Any] = {
        "command": "python experiments/runtime_overhead.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "ir": {"users": args.users, "items": args.items, "dim": args.dim, "weights": "int8"},
        "calls": args.calls, "k": 10, "num_threads": 1, "results": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for target, backend in (("tflite", "litert"), ("onnx", "onnx")):
            art = Path(tmp) / target
            export_ir(ir, art, target, k=50, history_capacity=50, overwrite=True)
            rec = runtime.load(art, backend=backend, num_threads=1)
            result["results"][backend] = measure(rec, args.calls)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
