"""Fuzzing: mutated manifests, corrupted files and random API arguments raise only the
runtime's own exceptions (never a crash, a hang or a foreign exception).

About 3,000 cases in all (each API case makes three calls); the artifacts are tiny so each case costs about a millisecond.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runtime
from runtime.errors import ChecksumError, RuntimeErrorBase
from tests.factories import exported_artifact, numpy_artifact, small_ir

N_ITEMS = 80  # the TFLite converter quantizes weights of >= 1024 elements only


def fast(n: int) -> settings:
    """Deterministic (CI reproduces any failure), no per-example deadline, no database."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from(["tflite", "onnx", "numpy", "lookup", "history",
                                             "model.tflite", "items.json", "../x", "float", "int8-per-row"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
ids = (st.text(max_size=6) | st.integers(-5, 300) | st.none() | st.booleans()
       | st.floats(allow_nan=True) | st.sampled_from(["1", "007", "12", "item-3", "0"])
       | st.lists(st.integers(0, 5), max_size=2))
ks = st.integers(-3, 500) | st.booleans() | st.floats() | st.none() | st.text(max_size=3)


def _paths(obj, prefix=()):
    """Every (path) into a JSON object, for choosing what to mutate."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@pytest.fixture(scope="module", params=["numpy", "tflite", "onnx"])
def artifact(request, tmp_path_factory) -> Path:
    ir = small_ir(num_users=12, num_items=N_ITEMS)
    out = tmp_path_factory.mktemp(f"fuzz-{request.param}") / "a"
    if request.param == "numpy":
        return numpy_artifact(ir, out)
    return exported_artifact(ir, out, request.param)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return runtime.load(numpy_artifact(small_ir(num_users=12, num_items=N_ITEMS),
                                       tmp_path_factory.mktemp("fuzz-api") / "a"))


def _use(rec: runtime.Recommender) -> None:
    for got in (rec.recommend(0, k=5) if "lookup" in rec.modes else [],
                rec.recommend_from_history([1, 2], k=5) if "history" in rec.modes else []):
        assert len(got) <= 5 and all(s > -1e8 for _, s in got)


def test_mutated_manifests(artifact, tmp_path):
    work = tmp_path / "m"
    shutil.copytree(artifact, work)
    original = json.loads((artifact / "manifest.json").read_text())
    paths = sorted(_paths(original), key=repr)[1:]

    @fast(250)
    @given(ops=st.lists(st.tuples(st.sampled_from(["drop", "replace", "version"]),
                                  st.sampled_from(paths), json_values), min_size=1, max_size=3))
    def run(ops):
        m = copy.deepcopy(original)
        for op, path, value in ops:
            parent = m
            try:
                for key in path[:-1]:
                    parent = parent[key]
                if op == "drop":
                    del parent[path[-1]]
                elif op == "replace":
                    parent[path[-1]] = value
                else:
                    m["format_version"] = value
            except (KeyError, IndexError, TypeError):
                continue  # an earlier op removed or reshaped this path
        (work / "manifest.json").write_text(json.dumps(m))
        try:
            rec = runtime.load(work)
        except RuntimeErrorBase as e:
            assert "\n" not in str(e)
            return
        _use(rec)

    run()


def test_corrupted_files_are_caught_by_the_hash(artifact, tmp_path):
    work = tmp_path / "f"
    shutil.copytree(artifact, work)
    names = sorted(json.loads((artifact / "manifest.json").read_text())["files"])

    @fast(150)
    @given(name=st.sampled_from(names), how=st.sampled_from(["truncate", "flip", "append"]),
           where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
    def run(name, how, where, bit):
        f = work / name
        data = (artifact / name).read_bytes()
        pos = int(where * len(data)) if data else 0
        if how == "truncate":
            bad = data[:pos]
        elif how == "flip" and data:
            bad = data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1:]
        else:
            bad = data + b"\0"
        f.write_bytes(bad)
        try:
            with pytest.raises(ChecksumError, match=name):
                runtime.load(work)
        finally:
            f.write_bytes(data)

    run()


@fast(1000)
@given(user=ids, k=ks, history=st.lists(ids, max_size=12) | ids,
       exclude=st.none() | st.lists(ids, max_size=8) | ids)
def test_random_api_arguments(rec, user, k, history, exclude):
    for call in (lambda: rec.recommend(user, k=k, exclude=exclude),
                 lambda: rec.recommend_from_history(history, k=k),
                 lambda: rec.session(history).recommend(k)):
        try:
            got = call()
        except RuntimeErrorBase as e:
            assert "\n" not in str(e)
            continue
        assert 0 < len(got) <= min(k, rec.k)
        assert all(s > -1e8 for _, s in got) and len({i for i, _ in got}) == len(got)


@fast(600)
@given(history=st.lists(st.integers(0, N_ITEMS - 1), max_size=30), k=st.integers(1, 60),
       user=st.integers(0, 11), exclude=st.lists(st.integers(0, N_ITEMS - 1), max_size=45))
def test_valid_arguments_keep_the_promises(rec, history, k, user, exclude):
    got = rec.recommend_from_history(history, k=k)
    items = {int(i) for i, _ in got}
    assert not items & set(history)
    assert len(got) == min(k, rec.k, N_ITEMS - len(set(history)))
    got = rec.recommend(user, k=k, exclude=exclude)
    banned = set(exclude) | set(rec.artifact.seen(user).tolist())
    assert not {int(i) for i, _ in got} & banned
    assert len(got) == min(k, rec.k, N_ITEMS - len(banned))
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True) and all(s > -1e8 for s in scores)
