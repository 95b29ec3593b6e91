"""PyG's GraphSAGE / GCN / GAT encoders trained in the user's own PyG code compile to an artifact
that ranks as the user's model does (float32, full width), in both serving modes: lookup is
``model(x, edge_index)``, history is the model's last layer run over the history."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgerec  # noqa: E402
from edgerec.frontend.pyg import FrontendError  # noqa: E402
from tests.factories import train_pyg_encoder, train_pyg_graphsage  # noqa: E402

U, I = 120, 200


def _final(model, x, edge_index) -> np.ndarray:
    with torch.no_grad():
        return model(x, edge_index).numpy().astype(np.float64)


def _lookup_ranking(z: np.ndarray, edge_index, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The user's model's ranking: dot products of its final embeddings, seen items excluded."""
    scores = z[:U] @ z[U:].T
    src, dst = edge_index.numpy()
    fwd = src < U
    scores[src[fwd], dst[fwd] - U] = -np.inf
    return scores, np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _last_layer_over(model, x, edge_index, history: list[int]) -> np.ndarray:
    """The user's model's last layer, run by PyG, for a new node (state zero: the compile's
    ``new_user="bias"``) whose neighbours are the history items. GAT's new user has no
    self-loop (edgerec's ``item_logits_only`` program)."""
    last = copy.deepcopy(model.convs[-1])
    if hasattr(last, "heads"):
        last.add_self_loops = False
    with torch.no_grad():
        h = x
        for conv in model.convs[:-1]:
            h = torch.relu(conv(h, edge_index))
        h = torch.cat([h, h.new_zeros(1, h.shape[1])])
        new = torch.full((len(history),), U + I)
        extra = torch.stack([torch.as_tensor(history) + U, new])
        z = last(h, torch.cat([edge_index, extra], 1))
    return z[U + I].numpy().astype(np.float64)


def _same_ranking(got: list[int], want: np.ndarray, scores: np.ndarray, tol: float = 1e-4) -> None:
    """Equal item lists, except neighbours whose scores differ by less than float rounding."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if g != w:
            assert abs(scores[g] - scores[w]) <= tol * max(1.0, abs(scores[w])), (g, w, scores[g], scores[w])


def _check_both_modes(art: Path, model, x, edge_index, users: range, histories: int) -> None:
    import runtime

    z = _final(model, x, edge_index)
    scores, top = _lookup_ranking(z, edge_index, 20)
    rec = runtime.load(art)
    for user in users:
        _same_ranking([int(i) for i, _ in rec.recommend(str(user), k=20)], top[user], scores[user])
    rng = np.random.default_rng(0)
    for _ in range(histories):
        history = [int(h) for h in rng.choice(I, size=int(rng.integers(1, 8)), replace=False)]
        s = z[U:] @ _last_layer_over(model, x, edge_index, history)
        s[history] = -np.inf
        got = [int(i) for i, _ in rec.recommend_from_history([str(h) for h in history], k=20)]
        _same_ranking(got, np.argsort(-s, kind="stable")[:20], s)


@pytest.fixture(scope="module")
def sage():
    return train_pyg_graphsage(U, I, layers=2, epochs=30)


def test_graphsage_tflite_ranks_as_the_users_model(sage, tmp_path):
    model, embedding, edge_index, valid = sage
    ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I, x=embedding, valid=valid)
    assert ckpt.config["model"] == "sage" and ckpt.config["train"]["module"] == "GraphSAGE"
    compiled = edgerec.compile(ckpt, dims=None, quantize="float32", new_user="bias")
    art = edgerec.export(compiled, tmp_path / "art", target="tflite")
    _check_both_modes(art, model, embedding.weight, edge_index, range(0, U, 7), histories=10)


@pytest.mark.parametrize("name, widths, options", [
    ("GraphSAGE", (16, 16, 2), dict(bias=False, root_weight=False, act=torch.nn.functional.relu)),
    ("GCN", (12, 16, 2), dict(out_channels=8)),
    ("GAT", (16, 16, 2), dict(dropout=0.1, negative_slope=0.05)),
    ("GraphSAGE", (8, 16, 1), {}),
], ids=["sage-no-bias-no-root", "gcn-widths", "gat", "sage-one-layer"])
def test_encoder_variants_rank_as_the_users_model(name, widths, options, tmp_path):
    """No bias / root weight (zeros) and ReLU as a function, input, hidden and output widths all different, GAT (with
    attention dropout, identity at inference, and its own LeakyReLU slope), one layer; x as a plain tensor and the graph
    given user->item only (symmetrised)."""
    torch.manual_seed(0)
    model, embedding, edge_index, _ = train_pyg_encoder(_models()[name](*widths, **options), U, I,
                                                        epochs=15, seed=2)
    x = embedding.weight.detach().clone()
    ckpt = edgerec.from_pyg(model, edge_index[:, edge_index[0] < U], num_users=U, num_items=I, x=x)
    art = edgerec.export(ckpt, tmp_path / "art", target="numpy", dims=None, quantize="float32",
                         new_user="bias")
    _check_both_modes(art, model, x, edge_index, range(0, U, 11), histories=5)


@pytest.mark.parametrize("name, options, key, value", [
    ("GCN", dict(out_channels=8), "hidden_channels", 16),
    ("GAT", dict(negative_slope=0.05), "negative_slope", 0.05),
])
def test_the_checkpoint_round_trips_what_differs_from_edgerec_defaults(name, options, key, value,
                                                                        tmp_path):
    """Widths and GAT's slope survive saving; a forged value is one line."""
    import json

    from edgerec.checkpoint import save_checkpoint
    from edgerec.errors import CheckpointError

    model = _models()[name](12, 16, 2, **options)
    x = torch.randn(U + I, 12)
    edge_index = torch.tensor([[0, 1, U, U + 1], [U, U + 1, 0, 1]])
    ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I, x=x)
    save_checkpoint(tmp_path / "ckpt", ckpt.model, ckpt.data, ckpt.config)
    back = edgerec.load_checkpoint(tmp_path / "ckpt")
    assert back.config[key] == value and back.config["in_channels"] == 12
    full = torch.cat([edge_index, edge_index.flip(0)], 1)
    np.testing.assert_allclose(back.model.get_embedding(full).detach().numpy(),
                               _final(model, x, full), rtol=1e-5, atol=1e-6)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({**config, key: "steep"}))
    with pytest.raises(CheckpointError, match=f"'{key}' must be") as info:
        edgerec.load_checkpoint(tmp_path / "ckpt")
    assert "\n" not in str(info.value)


def _models():
    from torch_geometric.nn.models import GAT, GCN, GIN, GraphSAGE

    return {"GraphSAGE": GraphSAGE, "GCN": GCN, "GAT": GAT, "GIN": GIN}


@pytest.mark.parametrize("name, options, message", [
    ("GraphSAGE", dict(jk="cat"), "jumping knowledge"),
    ("GraphSAGE", dict(norm="batch_norm"), "normalisation layers"),
    ("GraphSAGE", dict(act="tanh"), "activation Tanh"),
    ("GraphSAGE", dict(act=None), "no activation"),
    ("GraphSAGE", dict(aggr="max"), "aggregates with 'max'"),
    ("GraphSAGE", dict(normalize=True), "normalize=True"),
    ("GCN", dict(improved=True), "improved=True"),
    ("GAT", dict(heads=2), "heads=2"),
    ("GAT", dict(v2=True), "GATv2Conv"),
    ("GIN", {}, "unsupported module GIN"),
])
def test_what_the_mapping_cannot_reproduce_is_refused_in_one_line(name, options, message):
    model = _models()[name](8, 8, 2, **options)
    with pytest.raises(FrontendError, match=message) as info:
        edgerec.from_pyg(model, torch.tensor([[0], [U]]), num_users=U, num_items=I,
                         x=torch.zeros(U + I, 8))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("x, message", [
    (None, "reads node input x"),
    (torch.zeros(U + I + 1, 8), r"x has 321 rows \(nodes\)"),
    (torch.zeros(U + I, 6), "x has 6 channels"),
    (torch.zeros(U + I, 8, dtype=torch.long), "float matrix"),
    (torch.full((U + I, 8), float("nan")), "NaN"),
    ([[0.0]], "not list"),
])
def test_a_bad_node_input_is_refused_in_one_line(x, message):
    from torch_geometric.nn.models import GraphSAGE

    with pytest.raises(FrontendError, match=message) as info:
        edgerec.from_pyg(GraphSAGE(8, 8, 2), torch.tensor([[0], [U]]), num_users=U,
                         num_items=I, x=x)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, widths, options", [
    ("GraphSAGE", (8, 16, 3), dict(out_channels=4, bias=False)),
    ("GraphSAGE", (8, 16, 1), dict(root_weight=False)),
    ("GCN", (8, 16, 2), {}),
    ("GAT", (12, 16, 2), dict(out_channels=8, negative_slope=0.1)),
])
def test_a_state_dict_rebuilds_the_module(name, widths, options):
    """What ``edgerec import`` does with a safetensors state dict (and GAT's slope, which it
    does not hold): the same module, same outputs."""
    from edgerec.frontend.state_dict import rebuild

    torch.manual_seed(0)
    model = _models()[name](*widths, **options)
    kind = {"GraphSAGE": "sage", "GCN": "gcn", "GAT": "gat"}[name]
    back = rebuild(kind, model.state_dict(), "model.safetensors",
                   negative_slope=options.get("negative_slope"))
    assert type(back) is type(model)
    x, edge_index = torch.randn(10, widths[0]), torch.tensor([[0, 1, 2, 5], [5, 6, 7, 0]])
    np.testing.assert_array_equal(_final(back, x, edge_index), _final(model, x, edge_index))


@pytest.mark.parametrize("name, options, message", [
    ("GraphSAGE", dict(norm="layer_norm"), "normalisation layers"),
    ("GraphSAGE", dict(jk="cat"), "jumping knowledge"),
    ("GAT", dict(heads=2), "heads=2"),
])
def test_a_state_dict_the_mapping_cannot_reproduce_is_refused(name, options, message):
    from edgerec.frontend.state_dict import rebuild

    kind = {"GraphSAGE": "sage", "GAT": "gat"}[name]
    with pytest.raises(FrontendError, match=message):
        rebuild(kind, _models()[name](8, 8, 2, **options).state_dict(), "m.safetensors")
    with pytest.raises(FrontendError, match="not a PyG GCN state dict"):
        rebuild("gcn", {"embedding.weight": torch.zeros(3, 2)}, "m.safetensors")
    with pytest.raises(FrontendError, match="a sage has none"):
        rebuild("sage", _models()["GraphSAGE"](8, 8, 2).state_dict(), "m.safetensors",
                negative_slope=0.1)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgerec", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])


def test_cli_import_sage_with_its_node_input(sage, tmp_path):
    from safetensors.torch import save_file

    model, embedding, edge_index, _ = sage
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    save_file({"edge_index": edge_index.contiguous()}, str(tmp_path / "graph.safetensors"))
    save_file({"x": embedding.weight.detach().contiguous()}, str(tmp_path / "x.safetensors"))
    common = ["import", "--pyg-model", str(tmp_path / "model.safetensors"), "--edge-index",
              str(tmp_path / "graph.safetensors"), "--num-users", str(U), "--num-items", str(I),
              "--model", "sage"]
    ok = _cli(*common, "--x", str(tmp_path / "x.safetensors"), "--out", str(tmp_path / "ckpt"))
    assert ok.returncode == 0, ok.stderr
    ckpt = edgerec.load_checkpoint(tmp_path / "ckpt")
    assert ckpt.config["model"] == "sage" and ckpt.config["train"]["module"] == "GraphSAGE"
    np.testing.assert_allclose(ckpt.model.get_embedding(edge_index).detach().numpy(),
                               _final(model, embedding.weight, edge_index), rtol=1e-5, atol=1e-6)
    bad = _cli(*common, "--out", str(tmp_path / "ckpt2"))
    assert bad.returncode == 2 and "needs --x" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "ckpt2").exists()
