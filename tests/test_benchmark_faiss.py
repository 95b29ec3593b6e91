"""The FAISS baselines, the physical floor and the ratios ``edgerec bench`` reports with them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device_bench import evalfile
from edgerec.benchmark import BenchError, gains, render_markdown
from edgerec.benchmark.floor import floor_ms, item_table_bytes, measure_bandwidth, read_bandwidth
from tests.factories import make_artifact

faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A float32 numpy artifact with its eval.json, and its tables as numpy arrays."""
    art, ev = make_artifact(tmp_path_factory.mktemp("ref"), "numpy", embed_eval=True)
    items = np.load(art / "tables" / "item.npy")[:150]
    users = np.load(art / "tables" / "user.npy")[:40]
    return art, ev, items, users


def brute_force(items, user_vec, seen, k=20):
    s = items @ user_vec
    s[seen] = -np.inf
    return list(np.argsort(-s, kind="stable")[:k])


def test_top_k_unseen_over_fetches_past_the_seen_items():
    from edgerec.benchmark.baselines.faiss import top_k_unseen

    rng = np.random.default_rng(0)
    items = rng.standard_normal((100, 8)).astype(np.float32)
    index = faiss.IndexFlatIP(8)
    index.add(items)
    q = rng.standard_normal((1, 8)).astype(np.float32)
    best = brute_force(items, q[0], [], k=30)
    seen = np.asarray(best[:10], np.int32)  # the ten best items were seen: all must be skipped
    got = top_k_unseen(index, q, seen, 20)
    assert got == best[10:30]
    assert top_k_unseen(index, q, np.arange(95, dtype=np.int32), 20) == \
        brute_force(items, q[0], np.arange(95), k=5)  # catalogue runs out: fewer, not padding


def test_pq_shape_divides_the_width_and_matches_the_bytes():
    from edgerec.benchmark.baselines.faiss import pq_shape

    assert pq_shape(64, 17388, 17388 * 20) == (16, 8)  # 20 B/item: 16 nearer than 32
    assert pq_shape(64, 17388, 17388 * 28) == (32, 8)
    assert pq_shape(64, 17388, None) == (64, 8)  # a quarter of float32: d bytes per item
    m, nbits = pq_shape(8, 150, 150 * 4)
    assert nbits == 7 and 8 % m == 0 and m * nbits / 8 == pytest.approx(3.5)  # 2^7 <= 150


def test_faiss_indexes_match_brute_force_and_report_their_bytes(reference):
    from edgerec.benchmark.baselines.faiss import measure_faiss

    art, ev, items, users = reference
    rows = {r["quantization"]: r for r in measure_faiss(art, None, 150 * 4, 20, 2, 1)}
    assert list(rows) == ["float32", "SQ8", "SQ4", "PQ4x7"]
    # the exact index answers what numpy answers, seen items excluded
    ir_seen = {}
    indptr, indices = np.load(art / "seen_indptr.npy"), np.load(art / "seen_indices.npy")
    user_ids, item_ids = json.loads((art / "users.json").read_text()), json.loads((art / "items.json").read_text())
    recall, ndcg = [], []
    for r in evalfile.read_eval(ev).records:
        u = user_ids.index(r.user)
        ir_seen[u] = indices[indptr[u]: indptr[u + 1]]
        ranked = [item_ids[i] for i in brute_force(items, users[u], ir_seen[u])]
        rc, nd = evalfile.recall_ndcg(ranked, r.test, 20)
        recall.append(rc)
        ndcg.append(nd)
    flat = rows["float32"]["accuracy"]["lookup"]
    assert flat["recall@20"] == pytest.approx(np.mean(recall))
    assert flat["ndcg@20"] == pytest.approx(np.mean(ndcg))
    assert flat["agreement@20"] == 1.0  # the float model's own lookup answer
    b = {q: r["file_bytes"] for q, r in rows.items()}
    assert b["float32"] >= 150 * 8 * 4 > b["SQ8"] > b["SQ4"]
    for r in rows.values():
        lat = r["modes"]["lookup"]["latency"]
        assert r["target"] == "faiss" and lat["count"] == 20 and lat["p50_ms"] > 0
        assert "full-width" in r["note"]


def test_faiss_baselines_run_in_a_child_and_fail_in_one_line(reference, tmp_path):
    from edgerec.benchmark.baselines.faiss import faiss_baselines

    art, ev, _, _ = reference
    rows = faiss_baselines(art, eval_file=ev, item_bytes=None, requests=5, warmup=1, threads=1)
    assert [r["quantization"] for r in rows][:3] == ["float32", "SQ8", "SQ4"]
    with pytest.raises(BenchError, match=r"^FAISS baselines: .*no manifest|^FAISS baselines: .*manifest") as e:
        faiss_baselines(tmp_path, eval_file=None, item_bytes=None, requests=5, warmup=1, threads=1)
    assert "\n" not in str(e.value)


def test_item_table_bytes_and_the_floor():
    base = {"num_items": 1000, "dim": 24}
    assert item_table_bytes({**base, "quantization": {"weights": "float32"}}) == 1000 * 24 * 4
    assert item_table_bytes({**base, "quantization": {"weights": "int8-per-row"}}) == 1000 * 28
    assert item_table_bytes({**base, "quantization": {"weights": "int8-per-row+int4-item"}}) == 1000 * 16
    assert item_table_bytes({**base, "dim": 5, "quantization": {"weights": "int4-per-row"}}) == 1000 * 7
    assert item_table_bytes({**base, "quantization": {"weights": "bfloat3"}}) is None
    bw = {"memory": {"bytes_per_s": 1e9}, "by_bytes": {"1000": 1e10}}
    assert floor_ms(2_000_000, bw) == pytest.approx(2.0)  # no rate at that size: memory's
    assert floor_ms(1000, bw) == pytest.approx(1e-4) and floor_ms(None, bw) is None
    one = read_bandwidth(8 << 20, passes=2)
    assert one["bytes_per_s"] > 1e8 and one["buffer_bytes"] == 8 << 20 and one["passes"] == 2
    got = measure_bandwidth([4096, None, 4096], memory_bytes=16 << 20)
    assert list(got["by_bytes"]) == ["4096"] and got["memory"]["bytes_per_s"] > 1e8


def test_gains_against_faiss_and_the_headline_table():
    def lookup(p50, recall):
        return {"latency_ms": {"lookup": {"p50": p50, "p95": p50, "p99": p50}},
                "accuracy": {"lookup": {"recall@20": recall}}}

    art = {"kind": "artifact", "device": "ws", "name": "tflite", "quantization": "int8",
           "file_bytes": 1000, "error": None, "floor_ms": 0.01, **lookup(0.05, 0.25)}
    flat = {"kind": "baseline", "device": None, "name": "FAISS IndexFlatIP", "target": "faiss",
            "quantization": "float32", "file_bytes": 8000, "error": None, **lookup(0.1, 0.26)}
    pq = {**flat, "name": "FAISS IndexPQ PQ16x8", "quantization": "PQ16x8", "file_bytes": 1100,
          **lookup(0.2, 0.2)}
    (g,) = gains([art, flat, pq], {"ws"})
    assert g["x_faster_than_faiss_flat"] == pytest.approx(2.0)
    assert g["x_smaller_than_faiss_flat"] == pytest.approx(8.0)
    assert g["recall_vs_faiss_flat"] == pytest.approx(0.25 / 0.26)
    assert g["recall_vs_faiss_equal_bytes"] == pytest.approx(1.25)
    (elsewhere,) = gains([{**art, "device": "pi"}, flat, pq], {"ws"})  # FAISS ran on the workstation
    assert elsewhere["x_faster_than_faiss_flat"] is None and elsewhere["recall_vs_faiss_flat"] is None
    md = render_markdown({"runs": [], "rows": [art, flat, pq], "gains": [g],
                          "bandwidth": {"memory": {"bytes_per_s": 2e10, "method": "m"}}})
    assert "| ws | tflite (int8) | 0.050 | 0.0100 | 2.00 | 8.00 | 96.2% | 125.0% (IndexPQ PQ16x8) |" in md
    assert "20.0 GB/s" in md
    assert "Against FAISS" not in render_markdown({"runs": [], "rows": [], "gains": []})
