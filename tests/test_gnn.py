"""GraphSAGE / GCN / GAT encoders and the MLP head: training, exact precompute, the history
program on the device side (numpy), structured channel pruning, the whole compile pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgerec.checkpoint import load_checkpoint, save_checkpoint
from edgerec.data import load_data
from edgerec.errors import DataError, EdgerecError, IRError
from edgerec.gnn import edge_index, load_features
from edgerec.ir import Table, load_ir, save_ir
from edgerec.lowering.gnn import precompute_gnn
from edgerec.passes.finetune_head import finetune_head
from edgerec.passes.mlp_head import head_importance
from edgerec.passes.prune_channels import prune_encoder_channels
from edgerec.passes.prune_head import prune_head
from edgerec.pipeline import CompileOptions, compile_checkpoint
from edgerec.scoring import evaluate_ir, history_vectors, score_matrix
from edgerec.trainer import TrainConfig, train

KINDS = ("sage", "gcn", "gat")


@pytest.fixture(scope="module")
def data(synthetic_dir: Path):
    return load_data(synthetic_dir)


@pytest.fixture(scope="module")
def ckpts(data, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], object]:
    """One tiny checkpoint per (kind, head), trained once for the module."""
    root = tmp_path_factory.mktemp("gnn")
    out = {}
    for kind in KINDS:
        for head in ("dot", "mlp"):
            r = train(data, TrainConfig(model=kind, head=head, hidden=16, dim=8, layers=2, epochs=6,
                                        batch_size=2048, lr=2e-2, eval_every=3, patience=2, threads=1))
            out[(kind, head)] = load_checkpoint(save_checkpoint(root / f"{kind}-{head}", r.model, data,
                                                                r.checkpoint_config()))
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("head", ["dot", "mlp"])
def test_precompute_lookup_equals_pyg_forward(ckpts, kind: str, head: str) -> None:
    ck = ckpts[(kind, head)]
    d = ck.data
    ir, _ = precompute_gnn(ck)
    with torch.no_grad():
        z = ck.model.get_embedding(edge_index(d.train.users, d.train.items, d.num_users))
    np.testing.assert_allclose(ir.tables["user"].values, z[:d.num_users].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ir.tables["item"].values, z[d.num_users:].numpy(), rtol=1e-5, atol=1e-6)
    # the scorer in the IR is the model's scorer
    users = torch.arange(20)
    with torch.no_grad():
        want = ck.model.score_all(z[users], z[d.num_users:]).numpy()
    got = score_matrix(ir, ir.tables["user"].values[:20]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert ir.scorer["kind"] == head and ir.history["kind"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_history_program_is_the_models_last_layer(ckpts, kind: str) -> None:
    """With the user's own state included, the device-side last layer reproduces z_u exactly."""
    ir, _ = precompute_gnn(ckpts[(kind, "dot")])
    users = np.arange(ir.num_users)
    folded = history_vectors(ir, users, with_base=True)
    np.testing.assert_allclose(folded, ir.tables["user"].values, rtol=1e-4, atol=1e-5)
    new_user = history_vectors(ir, users, with_base=False)
    assert not np.allclose(new_user, ir.tables["user"].values)


@pytest.mark.parametrize("kind", ["sage", "gcn"])
def test_new_user_bias_default_is_the_layer_with_a_zero_state(ckpts, kind: str) -> None:
    """``new_user='bias'`` is exactly the PyG layer run with the user's incoming state zeroed."""
    ck = ckpts[(kind, "dot")]
    d = ck.data
    ir, _ = precompute_gnn(ck, new_user="bias")
    with torch.no_grad():
        ei = edge_index(d.train.users, d.train.items, d.num_users)
        x = ck.model.layer_outputs(ei)[-2].clone()
        x[:d.num_users] = 0
        want = ck.model.convs[-1](x, ei)[:d.num_users].numpy()
    got = history_vectors(ir, np.arange(d.num_users), with_base=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_gat_new_user_uses_item_logits_only(ckpts) -> None:
    ir, _ = precompute_gnn(ckpts[("gat", "dot")])
    u = int(np.flatnonzero(np.diff(ir.seen_indptr) > 2)[0])
    hist = ir.seen(u)
    s = ir.tables["history_logit"].values[hist, 0]
    a = np.exp(np.where(s > 0, s, 0.2 * s))
    want = (a / a.sum()) @ ir.tables["history_item"].values[hist] + ir.tables["history_bias"].values[0]
    np.testing.assert_allclose(history_vectors(ir, np.array([u]))[0], want, rtol=1e-5, atol=1e-6)


def test_ir_round_trip_and_validation(ckpts, tmp_path: Path) -> None:
    ir, _ = precompute_gnn(ckpts[("gat", "mlp")])
    back = load_ir(save_ir(ir, tmp_path / "ir"))
    assert back.history == ir.history and back.scorer == ir.scorer
    np.testing.assert_array_equal(back.tables["mlp_item"].values, ir.tables["mlp_item"].values)
    assert "mlp_item" in back.serving_tables() and "item" not in back.serving_tables()
    tables = dict(ir.tables)
    del tables["history_logit"]
    with pytest.raises(IRError, match="history_logit"):
        ir.replace(tables=tables).validate()
    with pytest.raises(IRError, match="MLP scorer"):
        ir.replace(scorer={"kind": "dot"}).validate()
    with pytest.raises(IRError, match="norm"):
        ir.replace(history={**ir.history, "norm": "rsqrt_len"}).validate()
    bad = dict(ir.tables, mlp_w2=Table(np.zeros((3, 1), np.float32)))
    with pytest.raises(IRError, match="mlp_w2"):
        ir.replace(tables=bad).validate()


def test_prune_head_by_importance(ckpts) -> None:
    ir, _ = precompute_gnn(ckpts[("sage", "mlp")])
    h = ir.tables["mlp_b1"].shape[1]
    full = score_matrix(ir, ir.tables["user"].values[:100]).numpy()
    # a neuron with no output weight is worthless: removing it changes no score
    w2 = ir.tables["mlp_w2"].values.copy()
    w2[3] = 0
    dead = ir.replace(tables={**ir.tables, "mlp_w2": Table(w2)})
    assert head_importance(dead, "activation")[3] == 0 and head_importance(dead, "magnitude")[3] == 0
    p, rep = prune_head(dead, h - 1)
    assert p.tables["mlp_item"].shape == (ir.num_items, h - 1) and p.scorer["hidden"] == h - 1
    np.testing.assert_allclose(score_matrix(p, p.tables["user"].values[:100]).numpy(),
                               score_matrix(dead, dead.tables["user"].values[:100]).numpy(), rtol=1e-5, atol=1e-5)
    # keeping the important half approximates the full scores better than keeping the other half
    imp = head_importance(ir, "activation")
    keep = np.sort(np.argsort(-imp)[: h // 2])
    worst = np.sort(np.argsort(imp)[: h // 2])
    from edgerec.passes.mlp_head import slice_head as _slice_head

    err = {}
    for name, idx in (("best", keep), ("worst", worst)):
        q = ir.replace(tables=_slice_head(ir, idx))
        err[name] = np.linalg.norm(score_matrix(q, q.tables["user"].values[:100]).numpy() - full)
    assert err["best"] < err["worst"]
    p, rep = prune_head(ir, 0.5)
    assert rep.bytes_after < rep.bytes_before
    with pytest.raises(ValueError, match="keep"):
        prune_head(ir, 0)
    with pytest.raises(ValueError, match="MLP"):
        prune_head(precompute_gnn(ckpts[("sage", "dot")])[0], 0.5)


def test_finetune_recovers_training_ranking(ckpts) -> None:
    ir, _ = precompute_gnn(ckpts[("gcn", "mlp")])
    pruned, _ = prune_head(ir, 2)

    def train_auc(x) -> float:
        rng = np.random.default_rng(1)
        users = np.repeat(np.arange(x.num_users), np.diff(x.seen_indptr))
        s = score_matrix(x, x.tables["user"].values).numpy()
        neg = rng.integers(0, x.num_items, users.size)
        return float(np.mean(s[users, x.seen_indices] > s[users, neg]))

    tuned, rep = finetune_head(pruned, epochs=5, lr=1e-2)
    assert tuned.tables["mlp_item"].shape == pruned.tables["mlp_item"].shape
    assert train_auc(tuned) > train_auc(pruned)
    losses = eval(rep.notes[0].split(": ", 1)[1])
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("head", ["dot", "mlp"])
def test_prune_encoder_channels(ckpts, head: str) -> None:
    ir, _ = precompute_gnn(ckpts[("gat", head)])
    p, rep = prune_encoder_channels(ir, 0.5)
    p.validate()
    assert p.dim == ir.dim // 2 and rep.bytes_after < rep.bytes_before
    assert p.tables["history_item"].shape[1] == p.dim
    if head == "mlp":
        assert p.tables["mlp_w1_user"].shape[0] == p.dim
    history_vectors(p, np.arange(10))  # the history program still runs on the narrower tables


@pytest.mark.parametrize("kind", KINDS)
def test_compile_pipeline(ckpts, kind: str, tmp_path: Path) -> None:
    """train -> precompute -> prune head -> quantize -> guard -> IR on disk, scored in both modes."""
    ck = ckpts[(kind, "mlp")]
    opts = CompileOptions(dims=None, quantize="int8", head_keep=0.5, finetune_epochs=1, force=True,
                          guard_sample=200)
    res = compile_checkpoint(ck, opts)
    names = [r.name for r in res.reports]
    assert names == ["precompute", "prune_head", "finetune_head", "quantize", "guard"]
    ir = load_ir(save_ir(res.ir, tmp_path / "ir"))
    assert ir.tables["mlp_item"].dtype == "int8" and ir.tables["mlp_b1"].shape == (1, 8)
    truth = ck.data.valid.csr(ck.data.num_users)
    for mode in ("lookup", "history"):
        m = evaluate_ir(ir, truth, mode=mode)
        assert 0 < m["recall@20"] <= 1
        assert f"{mode}/recall@20" in ir.metrics["compiled"]
    # the float model's lookup metrics are the trained model's validation metrics
    assert ir.metrics["float"]["lookup/recall@20"] == pytest.approx(ck.config["metrics"]["valid"]["recall@20"],
                                                                   abs=1e-6)
    with pytest.raises(EdgerecError, match="dims"):
        compile_checkpoint(ck, CompileOptions(dims=4, force=True, guard_sample=50))
    for scheme in ("int4-item", "int4"):  # refused before any pass runs
        with pytest.raises(EdgerecError, match=f"{scheme} .*MLP"):
            compile_checkpoint(ck, CompileOptions(quantize=scheme, force=True, guard_sample=50))


def test_dot_sage_keeps_svd_pruning_exact(ckpts) -> None:
    ck = ckpts[("sage", "dot")]
    res = compile_checkpoint(ck, CompileOptions(dims=4, quantize="none", force=True, guard_sample=100))
    ir = res.ir
    assert ir.dim == 4
    np.testing.assert_allclose(history_vectors(ir, np.arange(ir.num_users), with_base=True),
                               ir.tables["user"].values, rtol=1e-3, atol=1e-4)


def test_features_file(data, tmp_path: Path) -> None:
    f = tmp_path / "feat.csv"
    f.write_text("kind,id,f1,f2\n" + "".join(f"item,{i},{n % 3},1\n" for n, i in enumerate(data.item_ids[:50]))
                 + f"user,{data.user_ids[0]},0.5,-1\n")
    feats = load_features(f, data.user_ids, data.item_ids)
    assert feats.shape == (data.num_users + data.num_items, 2)
    assert feats[data.num_users + 4].tolist() == [1.0, 1.0] and feats[1].tolist() == [0.0, 0.0]
    r = train(data, TrainConfig(model="sage", dim=8, layers=1, epochs=2, eval_every=2, threads=1), features=feats)
    ck = load_checkpoint(save_checkpoint(tmp_path / "ck", r.model, data, r.checkpoint_config()))
    assert ck.config["num_features"] == 2
    np.testing.assert_array_equal(ck.model.features.numpy(), feats)
    ir, _ = precompute_gnn(ck)
    np.testing.assert_allclose(history_vectors(ir, np.arange(data.num_users), with_base=True),
                               ir.tables["user"].values, rtol=1e-4, atol=1e-5)
    for text, msg in (("item,nope,1\n", "unknown item id"), ("shop,1,2\n", "kind must be"),
                      (f"item,{data.item_ids[0]},x\n", "non-numeric"),
                      (f"item,{data.item_ids[0]},1\nitem,{data.item_ids[1]},1,2\n", "earlier rows")):
        f.write_text(text)
        with pytest.raises(DataError, match=msg):
            load_features(f, data.user_ids, data.item_ids)


def test_cli_train_gnn(synthetic_dir: Path, tmp_path: Path) -> None:
    from edgerec.cli import cli

    runner = CliRunner()
    out = tmp_path / "ck"
    r = runner.invoke(cli, ["train", "--data", str(synthetic_dir), "--out", str(out), "--model", "gat",
                            "--head", "mlp", "--dim", "8", "--layers", "1", "--epochs", "2",
                            "--eval-every", "2", "--threads", "1"])
    assert r.exit_code == 0, r.output
    c = load_checkpoint(out).config
    assert (c["model"], c["head"], c["hidden"]) == ("gat", "mlp", 64)
    r = runner.invoke(cli, ["train", "--data", str(synthetic_dir), "--out", str(tmp_path / "x"),
                            "--head", "mlp", "--epochs", "1"])
    assert r.exit_code != 0 and "need --model" in r.output


def test_cli_compile_prunes_the_head(ckpts, tmp_path: Path) -> None:
    from edgerec.cli import cli

    ck = ckpts[("sage", "mlp")]
    r = CliRunner().invoke(cli, ["compile", str(ck.path), "--out", str(tmp_path / "ir"), "--head-keep", "0.25",
                                 "--finetune-epochs", "1", "--new-user", "bias", "--force", "--json"])
    assert r.exit_code == 0, r.output
    ir = load_ir(tmp_path / "ir")
    assert ir.scorer["hidden"] == 4 and ir.history["new_user"] == "bias"
    assert [p["name"] for p in ir.passes] == ["precompute", "prune_head", "finetune_head", "quantize", "guard"]


def test_drop_cold_items_slices_every_item_table(ckpts) -> None:
    ck = ckpts[("gat", "mlp")]
    res = compile_checkpoint(ck, CompileOptions(dims=None, quantize="none", min_item_count=2, force=True,
                                                guard_sample=50))
    ir = res.ir
    ir.validate()
    kept = int((np.bincount(ck.data.train.items, minlength=ck.data.num_items) >= 2).sum())
    assert ir.num_items == kept < ck.data.num_items
    assert ir.tables["history_logit"].shape == (kept, 1) and ir.tables["mlp_item"].shape[0] == kept


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("head", ["dot", "mlp"])
def test_trained_model_exports_and_serves(ckpts, kind: str, head: str, tmp_path: Path) -> None:
    """train -> compile (int8) -> export to TFLite and ONNX -> runtime.load: the runtime's
    answers are the compiled IR's top-k in both modes (the exporter's parity check passed too)."""
    import runtime
    from edgerec.scoring import ir_topk
    from exporters import export_ir

    ck = ckpts[(kind, head)]
    ir = compile_checkpoint(ck, CompileOptions(dims=None, quantize="int8", force=True, guard_sample=100)).ir
    users = np.flatnonzero(np.diff(ir.seen_indptr) > 0)[:20]
    want = ir_topk(ir, users, 5, "lookup")
    for target in ("tflite", "onnx"):
        export_ir(ir, tmp_path / target, target, history_capacity=16)
        rec = runtime.load(tmp_path / target)
        got = [[ir.item_ids.index(i) for i, _ in rec.recommend(ir.user_ids[u], k=5)] for u in users]
        overlap = np.mean([len(set(g) & set(w)) / 5 for g, w in zip(got, want.tolist(), strict=True)])
        assert overlap >= 0.95, (target, overlap)
        hist = [ir.item_ids[i] for i in ir.seen(int(users[0]))[-16:]]
        items = [i for i, _ in rec.recommend_from_history(hist, k=5)]
        assert len(items) == 5 and not set(items) & set(hist)
