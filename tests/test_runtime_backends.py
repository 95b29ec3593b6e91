"""The interpreter backends (LiteRT, ONNX Runtime) against the numpy reference, and the
checks made once an interpreter has loaded a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime.artifact import write_manifest
from runtime.errors import ArtifactError, InvalidArgumentError
from tests.factories import (
    EXCLUDE_CAPACITY,
    HISTORY_CAPACITY,
    K,
    exported_artifact,
    numpy_artifact,
    small_ir,
)

BACKEND = {"tflite": "litert", "onnx": "onnx"}


@pytest.fixture(scope="module", params=["int8", "none"])
def scheme(request):
    return request.param


@pytest.fixture(scope="module")
def ir(scheme):
    return small_ir(scheme, num_users=30, num_items=120)


@pytest.fixture(scope="module")
def ref_art(ir, tmp_path_factory):
    return numpy_artifact(ir, tmp_path_factory.mktemp("ref") / "a")


@pytest.fixture(scope="module", params=["tflite", "onnx"])
def target_art(request, ir, tmp_path_factory):
    return request.param, exported_artifact(ir, tmp_path_factory.mktemp(request.param) / "a",
                                            request.param)


def ids(recs):
    return [i for i, _ in recs]


def test_same_top_k_as_reference(ir, ref_art, target_art, scheme):
    target, art = target_art
    rec = runtime.load(art, exact=True)
    assert rec.backend_name == BACKEND[target]
    acts = rec.manifest["quantization"]["activations"]
    assert (acts == "float") == (scheme == "none")
    ref = runtime.load(ref_art, backend="reference", activations=acts)
    rng = np.random.default_rng(0)
    for u in range(ir.num_users):
        got, want = rec.recommend(u, k=K), ref.recommend(u, k=K)
        assert ids(got) == ids(want), u
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4, atol=1e-4)
        extra = rng.choice(ir.num_items, size=12, replace=False).tolist()  # > exclude_capacity
        assert ids(rec.recommend(u, k=8, exclude=extra)) == ids(ref.recommend(u, k=8, exclude=extra))
    for n in (1, 3, HISTORY_CAPACITY, HISTORY_CAPACITY + 5):
        for _ in range(10):
            h = rng.choice(ir.num_items, size=n, replace=False).tolist()
            assert ids(rec.recommend_from_history(h, k=K)) == ids(ref.recommend_from_history(h, k=K))


def test_num_threads_and_explicit_backend(target_art):
    target, art = target_art
    a = runtime.load(art, backend=BACKEND[target], num_threads=2, exact=True)
    b = runtime.load(art, num_threads=1, exact=True)
    assert a.recommend(4) == b.recommend(4)
    with pytest.raises(InvalidArgumentError, match="reference backend only"):
        runtime.load(art, activations="float")
    with pytest.raises(InvalidArgumentError, match="cannot run"):
        runtime.load(art, backend="reference")


def test_model_signature_checked_against_manifest(target_art, tmp_path):
    """A manifest that is self-consistent but disagrees with the model file is refused."""
    target, art = target_art
    bad = tmp_path / "bad"
    shutil.copytree(art, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["k"] = K - 1
    for sig in m["signatures"].values():
        for name in ("scores", "items"):
            sig["outputs"][name]["shape"] = [K - 1]
    m.pop("files")
    write_manifest(bad, m)
    with pytest.raises(ArtifactError, match=r"output 'scores' is float32\[20\], the manifest says float32\[19\]"):
        runtime.load(bad)
    m = json.loads((art / "manifest.json").read_text())
    m["exclude_capacity"] = EXCLUDE_CAPACITY + 1
    m["signatures"]["lookup"]["inputs"]["exclude"]["shape"] = [EXCLUDE_CAPACITY + 1]
    m.pop("files")
    shutil.rmtree(bad)
    shutil.copytree(art, bad)
    write_manifest(bad, m)
    with pytest.raises(ArtifactError, match="input 'exclude'"):
        runtime.load(bad)


def test_wrong_model_file_is_refused(target_art, tmp_path):
    target, art = target_art
    bad = tmp_path / "garbage"
    shutil.copytree(art, bad)
    m = json.loads((bad / "manifest.json").read_text())
    for f in {s["file"] for s in m["signatures"].values()}:
        (bad / f).write_bytes(b"\x00" * 64 + b"not a model" * 10)
    m.pop("files")
    write_manifest(bad, m)  # hashes match: only the interpreter can tell
    with pytest.raises(ArtifactError, match="refused the model"):
        runtime.load(bad)


def test_tflite_model_is_memory_mapped_and_numpy_tables_too(target_art, ref_art):
    """LiteRT gets ``model_path`` (mmap, no Python copy); numpy tables use ``mmap_mode``."""
    target, art = target_art
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps here")
    rec = runtime.load(art)
    if target == "tflite":
        assert str((art / "model.tflite").resolve()) in maps.read_text()
    ref = runtime.load(ref_art)
    item = ref.artifact.tables["item"][0]
    assert isinstance(item, np.memmap) or isinstance(item.base, np.memmap)
    assert rec.recommend(1)


def test_default_delegate_agrees_with_exact_kernels(ir, target_art):
    """XNNPACK (the default) may swap near-ties but must agree closely with the exact kernels."""
    target, art = target_art
    fast, exact = runtime.load(art), runtime.load(art, exact=True)
    overlap = [len({i for i, _ in fast.recommend(u, k=K)} & {i for i, _ in exact.recommend(u, k=K)}) / K
               for u in range(ir.num_users)]
    assert np.mean(overlap) >= 0.97
    with pytest.raises(runtime.InvalidArgumentError):
        runtime.load(art, exact="yes")


def test_tflite_direct_call_matches_the_signature_runner(ir, target_art):
    """The backend skips the runner's per-call resize/allocate; its answers must be the
    runner's, and an interpreter build without the private wrapper falls back to the runner."""
    from runtime.backends._tflite_common import _fast_call

    target, art = target_art
    if target != "tflite":
        pytest.skip("TFLite only")
    rec = runtime.load(art)
    backend = rec._backend()
    assert backend._calls["lookup"] is not backend.runner("lookup")  # the direct path is in use
    m = json.loads((art / "manifest.json").read_text())
    for u in range(0, ir.num_users, 7):
        user = np.array([u], np.int32)
        exclude = np.full(m["exclude_capacity"], m["pad_index"], np.int32)
        seen = rec.artifact.seen(u)[: exclude.size]
        exclude[: seen.size] = seen
        scores, items = backend.lookup(user, exclude)
        public = backend.runner("lookup")(user=user, exclude=exclude)
        np.testing.assert_array_equal(items, public["items"])
        np.testing.assert_array_equal(scores, public["scores"])
    assert _fast_call(object()) is None


def test_a_model_the_interpreter_cannot_prepare_fails_in_load(ir, target_art):
    """AllocateTensors runs while the backend is built: a failure there is a one-line
    ArtifactError from load(), not an error at the first request."""
    from runtime.artifact import load_artifact
    from runtime.backends._tflite_common import TFLiteBackend

    target, art = target_art
    if target != "tflite":
        pytest.skip("TFLite only")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    class Wrapper:
        def __init__(self, real):
            self.real = real
            self.SetTensor, self.Invoke, self.GetTensor = real.SetTensor, real.Invoke, real.GetTensor

        def AllocateTensors(self, subgraph):
            raise RuntimeError("Failed to prepare\nnode 3 (FULLY_CONNECTED)")

    class Broken(Interpreter):
        def get_signature_runner(self, key=None):
            runner = super().get_signature_runner(key)
            runner._interpreter_wrapper = Wrapper(runner._interpreter_wrapper)
            return runner

    with pytest.raises(ArtifactError, match="cannot prepare the model: RuntimeError: Failed to prepare node 3"):
        TFLiteBackend("litert", Broken, OpResolverType.AUTO, load_artifact(art), 1)


@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_repacked_weights_leave_the_resident_set(scheme, tmp_path):
    """With XNNPACK the file's copy of the scoring weights is dropped from the process after
    load: the range found is the item table's integers, its pages leave the process's page
    tables, nothing reads them back over requests, and the answers are those of a load that
    keeps them."""
    from exporters.tflite.layout import item_rows
    from exporters.weights import pack_int4
    from runtime.backends import _repacked

    if not Path("/proc/self/pagemap").exists():
        pytest.skip("no /proc/self/pagemap here")
    ir = small_ir(scheme, num_users=40, num_items=6000, dim=16, seed=2)
    art = exported_artifact(ir, tmp_path / "a", "tflite")
    path = art / "model.tflite"
    ((start, length),) = _repacked.fully_connected_weights(path)
    rows = item_rows(ir).astype(np.int8)
    want = pack_int4(rows) if scheme == "int4" else rows.tobytes()
    assert path.read_bytes()[start:start + length] == want

    def mapped() -> int:  # bytes of the weights' pages in this process's page tables
        total = 0
        with open("/proc/self/pagemap", "rb") as pm:
            for lo, _hi, offset in _repacked.file_mappings(path):
                a = lo + start - offset
                pages = range(a // _repacked.PAGE, (a + length - 1) // _repacked.PAGE + 1)
                pm.seek(pages[0] * 8)
                entries = np.frombuffer(pm.read(8 * len(pages)), np.uint64)
                total += int((entries >> np.uint64(63)).sum()) * _repacked.PAGE  # bit 63: present
        return total

    rec = runtime.load(art)
    assert rec._backend().released_bytes >= length - 2 * _repacked.PAGE
    exact = runtime.load(art, exact=True)
    assert exact._backend().released_bytes == 0  # the builtin kernels read the file every call
    del exact
    rng = np.random.default_rng(0)
    for u in range(ir.num_users):
        rec.recommend(u, k=K)
        rec.recommend_from_history([int(i) for i in rng.choice(ir.num_items, 5, replace=False)], k=K)
    assert mapped() <= 2 * _repacked.PAGE  # at most the two partial pages at the ends
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_repacked, "release", lambda path, mappings: 0)
        kept = runtime.load(art)
        assert kept._backend().released_bytes == 0
        assert mapped() >= length - 2 * _repacked.PAGE  # this check sees pages that are there
        for u in range(ir.num_users):
            assert rec.recommend(u, k=K) == kept.recommend(u, k=K)
