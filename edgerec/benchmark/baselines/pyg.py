"""The PyG baseline: the original LightGCN answering one request over the whole graph."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgerec.benchmark.baselines.child import child_main, run_child
from edgerec.benchmark.measure import measure_callable

NAME = "PyG LightGCN (full graph per request)"


def pyg_baseline(checkpoint: Path, requests: int, threads: int) -> dict[str, Any]:
    """:func:`measure_pyg` in a fresh process (see :mod:`.child`); a bench baseline.

    Args:
        checkpoint: the trained checkpoint directory.
        requests: timed requests.
        threads: torch threads.
    """
    return run_child(__name__, [str(checkpoint), str(requests), str(threads)], "PyG")


def measure_pyg(checkpoint: Path, requests: int, threads: int) -> dict[str, Any]:
    """``LightGCN.recommend`` over the whole graph for random users, in this process.

    Args:
        checkpoint: the trained checkpoint directory.
        requests: timed requests (after 3 warm-up calls).
        threads: torch threads.
    """
    import numpy as np
    import psutil
    import torch

    from edgerec.checkpoint import load_checkpoint
    from edgerec.models import normalized_adjacency
    from edgerec.trainer import evaluate_checkpoint_model

    torch.set_num_threads(threads)
    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    ckpt = load_checkpoint(checkpoint)
    d = ckpt.data
    adj = normalized_adjacency(d.train.users, d.train.items, d.num_users, d.num_items)
    init_ms = (time.perf_counter() - t0) * 1e3
    U, I = d.num_users, d.num_items
    items = torch.arange(U, U + I)
    rng = np.random.default_rng(0)
    users = rng.integers(0, U, requests + 64)

    def one(i: int) -> None:
        with torch.no_grad():
            ckpt.model.recommend(adj, src_index=torch.tensor([int(users[i % users.size])]),
                                 dst_index=items, k=20)

    lat = measure_callable(one, requests, warmup=3)
    rss = psutil.Process().memory_info().rss - rss0
    acc = evaluate_checkpoint_model(ckpt.model, d, "test", (20,)) if len(d.test) else {}
    size = sum((checkpoint / f).stat().st_size
               for f in ("weights.safetensors", "graph.safetensors"))
    return {"name": NAME, "target": "pytorch", "quantization": "float32",
            "file_bytes": size, "init_ms": init_ms, "peak_rss_increase_bytes": max(0, rss),
            "modes": {"lookup": lat},
            "accuracy": {"lookup": {"recall@20": acc.get("recall@20"), "ndcg@20": acc.get("ndcg@20"),
                                    "agreement@20": 1.0}} if acc else {},
            "note": "accuracy on the full test split (all users), not the eval sample; "
                    "PyG recommend does not exclude seen items"}


def _main(argv: list[str]) -> dict[str, Any]:
    checkpoint, requests, threads = argv
    return measure_pyg(Path(checkpoint), int(requests), int(threads))


if __name__ == "__main__":
    child_main(_main)
