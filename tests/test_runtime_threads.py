"""A Recommender shared by 8 threads gives exactly the answers of serial calls."""

from __future__ import annotations

import threading

import pytest

import runtime
from tests.factories import exported_artifact, numpy_artifact, small_ir

THREADS, CALLS = 8, 1000


@pytest.fixture(scope="module", params=["numpy", "tflite", "onnx"])
def rec(request, tmp_path_factory):
    ir = small_ir(num_users=40, num_items=150)
    out = tmp_path_factory.mktemp(f"threads-{request.param}") / "a"
    art = numpy_artifact(ir, out) if request.param == "numpy" else exported_artifact(ir, out, request.param)
    return runtime.load(art)


def _call(rec, j: int):
    """Call j of a fixed mix: lookups (with and without overflowing exclusions) and histories."""
    n = rec.num_items
    if j % 3 == 0:
        return rec.recommend(j % rec.num_users, k=1 + j % 12)
    if j % 3 == 1:
        return rec.recommend(j % rec.num_users, k=10, exclude=[(j * 7 + i) % n for i in range(j % 9)])
    return rec.recommend_from_history([(j * 13 + i * 5) % n for i in range(1 + j % 11)], k=1 + j % 15)


def test_threads_match_serial(rec):
    serial = [_call(rec, j) for j in range(CALLS)]
    results: list[list] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        try:
            start.wait()
            for step in range(CALLS):
                j = (step * 7 + t * 131) % CALLS  # each thread its own order
                results[t].append((j, _call(rec, j)))
        except BaseException as e:  # reported below, with the thread's answers
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors[:3]
    assert all(not th.is_alive() for th in threads)
    for t in range(THREADS):
        assert len(results[t]) == CALLS
        for j, got in results[t]:
            assert got == serial[j], (t, j)
