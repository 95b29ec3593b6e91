"""A LightGCN trained in the user's own PyG code compiles to an artifact that ranks exactly as
the user's model does (float32, full width, no distillation), in both serving modes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgerec  # noqa: E402
from edgerec.frontend.pyg import FrontendError  # noqa: E402
from tests.factories import train_pyg_lightgcn  # noqa: E402

U, I, K = 120, 200, 2


def _users_ranking(model, edge_index, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The user's model's own ranking: final embeddings from ``get_embedding``, seen excluded."""
    with torch.no_grad():
        emb = model.get_embedding(edge_index).numpy().astype(np.float64)
    scores = emb[:U] @ emb[U:].T
    src, dst = edge_index.numpy()
    fwd = src < U
    scores[src[fwd], dst[fwd] - U] = -np.inf
    return scores, np.argsort(-scores, axis=1, kind="stable")[:, :k], emb


def _same_ranking(got: list[int], want: np.ndarray, scores: np.ndarray, tol: float = 1e-5) -> None:
    """Equal item lists, except neighbours whose scores differ by less than float rounding."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if g != w:
            assert abs(scores[g] - scores[w]) <= tol * max(1.0, abs(scores[w])), (g, w, scores[g], scores[w])


@pytest.fixture(scope="module")
def pyg_model():
    return train_pyg_lightgcn(U, I, layers=K, epochs=30)


@pytest.fixture(scope="module")
def exported(pyg_model, tmp_path_factory):
    model, edge_index, valid = pyg_model
    ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I, valid=valid)
    compiled = edgerec.compile(ckpt, dims=None, quantize="float32")
    out = tmp_path_factory.mktemp("pyg") / "art"
    return edgerec.export(compiled, out, target="tflite")


def test_lookup_topk_equals_the_users_model(pyg_model, exported):
    import runtime

    model, edge_index, _ = pyg_model
    scores, top, _ = _users_ranking(model, edge_index, 20)
    rec = runtime.load(exported)
    for user in range(0, U, 7):
        got = [int(i) for i, _ in rec.recommend(str(user), k=20)]
        _same_ranking(got, top[user], scores[user])


def _layers(model, edge_index) -> list[np.ndarray]:
    """Every layer's embeddings, from the user's model's own convolutions (PyG's gcn_norm)."""
    x = model.embedding.weight
    out = [x]
    with torch.no_grad():
        for conv in model.convs:
            x = conv(x, edge_index)
            out.append(x)
    return [t.detach().numpy().astype(np.float64) for t in out]


def _fold(model, edge_index, history: list[int]) -> np.ndarray:
    """LightGCN's history fold from the user's model, in numpy: ``n^-1/2 Σ H_i`` with
    ``H_i = d_i^-1/2 Σ_{l<K} α_{l+1} e_i^(l)``."""
    xs = _layers(model, edge_index)
    alpha = model.alpha.numpy().astype(np.float64)
    deg = np.bincount(edge_index[0].numpy(), minlength=U + I).astype(np.float64)
    H = sum(alpha[l + 1] * xs[l][U:] for l in range(K)) * (deg[U:] ** -0.5)[:, None]
    return H[history].sum(0) / np.sqrt(len(history))


def test_history_topk_equals_the_fold_of_the_users_model(pyg_model, exported):
    import runtime

    model, edge_index, _ = pyg_model
    _, _, emb = _users_ranking(model, edge_index, 20)
    rec = runtime.load(exported)
    rng = np.random.default_rng(0)
    for _ in range(10):
        history = [int(h) for h in rng.choice(I, size=int(rng.integers(1, 8)), replace=False)]
        scores = emb[U:] @ _fold(model, edge_index, history)
        scores[history] = -np.inf
        want = np.argsort(-scores, kind="stable")[:20]
        got = [int(i) for i, _ in rec.recommend_from_history([str(h) for h in history], k=20)]
        _same_ranking(got, want, scores)


def test_alpha_per_layer_duplicates_and_user_to_item_only(tmp_path):
    """A per-layer alpha, duplicated edges (PyG counts them twice) and a user->item-only graph
    (symmetrised first) are reproduced exactly."""
    import runtime

    model, edge_index, _ = train_pyg_lightgcn(U, I, layers=K, alpha=torch.tensor([0.5, 0.3, 0.2]),
                                              epochs=10, duplicates=40, seed=1)
    one_way = edge_index[:, edge_index[0] < U]
    ckpt = edgerec.from_pyg(model, one_way, num_users=U, num_items=I)
    art = edgerec.export(ckpt, tmp_path / "art", target="numpy", dims=None, quantize="float32")
    scores, top, _ = _users_ranking(model, edge_index, 10)
    rec = runtime.load(art)
    for user in range(0, U, 11):
        _same_ranking([int(i) for i, _ in rec.recommend(str(user), k=10)], top[user], scores[user])


def test_without_held_out_pairs_the_guard_holds_agreement(pyg_model):
    model, edge_index, _ = pyg_model
    ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I)
    compiled = edgerec.compile(ckpt)  # dims auto, int8: guarded on agreement with the float model
    guard = compiled.reports[-1]
    assert guard.name == "guard" and guard.params["min_agreement"] == 0.9
    for mode in ("lookup", "history"):
        assert guard.metrics_after[f"{mode}/agreement@20"] >= 0.9
        assert f"{mode}/recall@20" not in guard.metrics_after


@pytest.mark.parametrize("change, message", [
    (dict(num_users=U + 1), "nodes"),
    (dict(edge_weight=torch.ones(3)), "edge weights"),
    (dict(model=torch.nn.Linear(2, 2)), "unsupported module Linear"),
    (dict(edge_index=torch.tensor([[0, 1], [U, 2]])), "not between a user and an item"),
    (dict(edge_index=torch.tensor([[0, U + 1], [U, 1]])), "not every user->item edge"),
    (dict(valid=torch.tensor([[0], [1]])), "valid must hold"),
])
def test_refusals_are_one_line(pyg_model, change, message):
    model, edge_index, _ = pyg_model
    kw = dict(model=model, edge_index=edge_index, num_users=U, num_items=I)
    kw.update(change)
    if "num_users" in change:
        kw["num_items"] = I
    with pytest.raises(FrontendError, match=message) as info:
        edgerec.from_pyg(kw.pop("model"), kw.pop("edge_index"), **kw)
    assert "\n" not in str(info.value)


def test_normalize_false_is_refused():
    from torch_geometric.nn.models import LightGCN

    model = LightGCN(U + I, 8, 2, normalize=False)
    with pytest.raises(FrontendError, match="normalize=False"):
        edgerec.from_pyg(model, torch.tensor([[0], [U]]), num_users=U, num_items=I)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgerec", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])


def test_cli_import_reads_safetensors_and_refuses_a_pickle(pyg_model, tmp_path):
    from safetensors.torch import save_file

    model, edge_index, _ = pyg_model
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    save_file({"edge_index": edge_index.contiguous()}, str(tmp_path / "graph.safetensors"))
    ok = _cli("import", "--pyg-model", str(tmp_path / "model.safetensors"), "--edge-index",
              str(tmp_path / "graph.safetensors"), "--num-users", str(U), "--num-items", str(I),
              "--out", str(tmp_path / "ckpt"))
    assert ok.returncode == 0, ok.stderr
    ckpt = edgerec.load_checkpoint(tmp_path / "ckpt")
    assert ckpt.config["train"]["source"] == "from_pyg"
    torch.save(model.state_dict(), tmp_path / "model.pt")  # a pickle: never loaded
    bad = _cli("import", "--pyg-model", str(tmp_path / "model.pt"), "--edge-index",
               str(tmp_path / "graph.safetensors"), "--num-users", str(U), "--num-items", str(I),
               "--out", str(tmp_path / "ckpt2"))
    assert bad.returncode == 2 and "safetensors" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "ckpt2").exists()
    wrong = _cli("import", "--pyg-model", str(tmp_path / "model.safetensors"), "--edge-index",
                 str(tmp_path / "graph.safetensors"), "--num-users", str(U + 5), "--num-items",
                 str(I), "--out", str(tmp_path / "ckpt3"))
    assert wrong.returncode == 2 and "nodes" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_without_held_out_pairs_evaluate_and_with_eval_say_so(pyg_model, tmp_path):
    model, edge_index, _ = pyg_model
    ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I)
    with pytest.raises(edgerec.EdgerecError, match="no held-out test interactions.*--data"):
        edgerec.evaluate(ckpt)
    with pytest.raises(edgerec.EdgerecError, match="held-out test interactions"):
        edgerec.export(ckpt, tmp_path / "art", target="numpy", dims=None, with_eval=True)
    assert not (tmp_path / "art").exists()
