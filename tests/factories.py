"""What the tests build: small IRs from random factors, artifacts, a PyG-trained model, and the
command line run in a subprocess. Test modules import builders from here, never from each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from edgerec.ir import IR, Table


def make_ir(num_users: int = 60, num_items: int = 200, dim: int = 16, seed: int = 0,
            modes: tuple[str, ...] = ("lookup", "history"), string_ids: bool = False) -> IR:
    """A float32 IR whose tables obey the LightGCN history fold on a random bipartite graph."""
    rng = np.random.default_rng(seed)
    seen_lists = []
    for _ in range(num_users):
        n = int(rng.integers(1, 12))
        seen_lists.append(np.sort(rng.choice(num_items, size=n, replace=False)).astype(np.int32))
    indptr = np.zeros(num_users + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(s) for s in seen_lists])
    indices = np.concatenate(seen_lists).astype(np.int32)
    item = rng.standard_normal((num_items, dim)).astype(np.float32)
    hist = (rng.standard_normal((num_items, dim)) * 0.3).astype(np.float32)
    base = (rng.standard_normal((num_users, dim)) * 0.1).astype(np.float32)
    user = np.stack([base[u] + hist[s].sum(0) / np.sqrt(len(s)) for u, s in enumerate(seen_lists)])
    counts = np.bincount(indices, minlength=num_items)
    popular = np.argsort(-counts, kind="stable").astype(np.int32)
    prefix = ("user-", "item-") if string_ids else ("", "")
    return IR(
        num_users=num_users, num_items=num_items,
        tables={"item": Table(item), "user": Table(user.astype(np.float32)),
                "history_item": Table(hist), "user_base": Table(base)},
        modes=modes,
        user_ids=[f"{prefix[0]}{u}" for u in range(num_users)],
        item_ids=[f"{prefix[1]}{i}" for i in range(num_items)],
        popular=popular, seen_indptr=indptr, seen_indices=indices,
        model={"kind": "random", "layers": 2, "dim": dim},
        provenance={"checkpoint_fingerprint": f"random-{seed}"},
    )


def train_pyg_lightgcn(num_users: int = 120, num_items: int = 200, *, dim: int = 16,
                       layers: int = 2, alpha: object = None, epochs: int = 40, seed: int = 0,
                       duplicates: int = 0) -> tuple[object, object, object]:
    """A LightGCN trained by a plain PyG loop (PyG's own model and BPR loss, as in PyG's
    ``examples/lightgcn.py``), not by edgerec: ``(model, edge_index both ways, valid pairs)``
    with items numbered after users. ``duplicates`` repeats that many training edges."""
    import torch
    from torch_geometric.nn.models import LightGCN

    u, i, edge_index, valid = _pyg_graph(num_users, num_items, seed, duplicates)
    torch.manual_seed(seed)
    model = LightGCN(num_users + num_items, dim, layers, alpha=alpha)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    items = torch.arange(num_users, num_users + num_items)
    for _ in range(epochs):
        neg = items[torch.randint(0, num_items, (u.numel(),))]
        pos_edges = torch.stack([u, i])
        neg_edges = torch.stack([u, neg])
        rank = model(edge_index, torch.cat([pos_edges, neg_edges], dim=1))
        pos, negs = rank.chunk(2)
        loss = model.recommendation_loss(pos, negs, node_id=torch.cat([u, i, neg]).unique(), lambda_reg=1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, edge_index, valid


def _pyg_graph(num_users: int, num_items: int, seed: int, duplicates: int = 0) -> tuple[object, ...]:
    """Synthetic training pairs in PyG's layout (items numbered after users): ``(users, items,
    edge_index both ways, [2, V] valid pairs)``; ``duplicates`` repeats that many edges."""
    import torch

    from edgerec.synthetic import make_synthetic

    data = make_synthetic(num_users, num_items, communities=6, seed=seed)
    u = torch.as_tensor(data.train.users, dtype=torch.long)
    i = torch.as_tensor(data.train.items, dtype=torch.long) + num_users
    if duplicates:
        u, i = torch.cat([u, u[:duplicates]]), torch.cat([i, i[:duplicates]])
    edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
    valid = torch.stack([torch.as_tensor(data.valid.users, dtype=torch.long),
                         torch.as_tensor(data.valid.items, dtype=torch.long) + num_users])
    return u, i, edge_index, valid


def train_pyg_encoder(model: object, num_users: int = 120, num_items: int = 200, *,
                      epochs: int = 30, seed: int = 0) -> tuple[object, object, object, object]:
    """A PyG encoder (``GraphSAGE``, ``GCN``, ``GAT``: ``model(x, edge_index)``) trained by a
    plain PyG loop over a learnable ``torch.nn.Embedding`` input with BPR, not by edgerec:
    ``(model, embedding, edge_index both ways, valid pairs)``, items numbered after users."""
    import torch
    import torch.nn.functional as F

    u, i, edge_index, valid = _pyg_graph(num_users, num_items, seed)
    torch.manual_seed(seed)
    embedding = torch.nn.Embedding(num_users + num_items, model.in_channels)
    torch.nn.init.normal_(embedding.weight, std=0.1)
    opt = torch.optim.Adam([*embedding.parameters(), *model.parameters()], lr=0.01)
    for _ in range(epochs):
        z = model(embedding.weight, edge_index)
        neg = torch.randint(num_users, num_users + num_items, (u.numel(),))
        pos_score, neg_score = (z[u] * z[i]).sum(-1), (z[u] * z[neg]).sum(-1)
        loss = -F.logsigmoid(pos_score - neg_score).mean() + 1e-4 * embedding.weight.pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, embedding, edge_index, valid


def train_pyg_graphsage(num_users: int = 120, num_items: int = 200, *, dim: int = 16,
                        layers: int = 2, epochs: int = 30, seed: int = 0,
                        **options: object) -> tuple[object, object, object, object]:
    """PyG's ``GraphSAGE(dim, dim, layers, **options)`` trained by :func:`train_pyg_encoder`."""
    import torch
    from torch_geometric.nn.models import GraphSAGE

    torch.manual_seed(seed)
    return train_pyg_encoder(GraphSAGE(dim, dim, layers, **options), num_users, num_items,
                             epochs=epochs, seed=seed)


# the runtime tests' artifact shape
K, HISTORY_CAPACITY, EXCLUDE_CAPACITY = 20, 8, 6


def small_ir(scheme: str = "int8", **kw) -> IR:
    """``make_ir(**kw)`` quantized with ``scheme`` (``"none"``: float32)."""
    from edgerec.passes.quantize import quantize

    ir = make_ir(**kw)
    return quantize(ir, scheme)[0] if scheme != "none" else ir


def numpy_artifact(ir: IR, out: Path, k: int = K, history_capacity: int = HISTORY_CAPACITY,
                   exclude_capacity: int = EXCLUDE_CAPACITY,
                   activations: str | None = None) -> Path:
    """Write ``ir`` as a numpy-target artifact by hand, with ``runtime.artifact``'s writer (no
    exporter involved), following docs/architecture.md."""
    import json

    from runtime import artifact as A

    out.mkdir(parents=True)
    (out / "tables").mkdir()
    tables = {}
    for name in ir.serving_tables():
        t = ir.tables[name]
        np.save(out / f"tables/{name}.npy", t.values, allow_pickle=False)
        entry = {"file": f"tables/{name}.npy", "scale_file": None}
        if t.scale is not None:
            np.save(out / f"tables/{name}.scale.npy", t.scale, allow_pickle=False)
            entry["scale_file"] = f"tables/{name}.scale.npy"
        tables[name] = entry
    (out / "items.json").write_text(json.dumps(ir.item_ids))
    (out / "users.json").write_text(json.dumps(ir.user_ids))
    np.save(out / "popular.npy", ir.popular, allow_pickle=False)
    np.save(out / "seen_indptr.npy", ir.seen_indptr, allow_pickle=False)
    np.save(out / "seen_indices.npy", ir.seen_indices, allow_pickle=False)
    dtype = ir.tables["item"].dtype
    weights = {"int8": "int8-per-row", "float16": "float16", "float32": "float32"}[dtype]
    m = A.build_manifest(target="numpy", num_users=ir.num_users, num_items=ir.num_items,
                         dim=ir.dim, k=k, history_capacity=history_capacity,
                         exclude_capacity=exclude_capacity, modes=list(ir.modes), weights=weights,
                         activations=activations or "float", tables=tables)
    A.write_manifest(out, m)
    return out


def exported_artifact(ir: IR, out: Path, target: str, k: int = K,
                      history_capacity: int = HISTORY_CAPACITY,
                      exclude_capacity: int = EXCLUDE_CAPACITY) -> Path:
    """``ir`` exported by the real exporter for ``target`` (tflite, onnx or numpy)."""
    from exporters import export_ir

    export_ir(ir, out, target, k=k, history_capacity=history_capacity,
              exclude_capacity=exclude_capacity, overwrite=True)
    return out


def float_reference(ir, users: range) -> list[dict]:
    """Held-out records whose test items are the float model's own top-5 (so recall@10 = 1).

    History mode: ``e = n^-1/2 * sum(H_i)`` over the history, history items excluded; lookup:
    the user's final embedding, seen items excluded (docs/architecture.md).
    """
    item = ir.tables["item"].dequantize()
    hist_t = ir.tables["history_item"].dequantize()
    user_t = ir.tables["user"].dequantize()
    out = []
    for u in users:
        seen = ir.seen(u)
        e_h = hist_t[seen].sum(0) / np.sqrt(len(seen))
        ranked = {}
        for mode, e in (("history", e_h), ("lookup", user_t[u])):
            s = item @ e
            s[seen] = -np.inf
            ranked[mode] = [ir.item_ids[i] for i in np.argsort(-s, kind="stable")[:20]]
        out.append({"user": ir.user_ids[u], "history": [ir.item_ids[i] for i in seen],
                    "test": ranked["history"][:5], "reference": ranked})
    return out


def make_artifact(root: Path, target: str = "numpy", *, seed: int = 0,
                  embed_eval: bool = False) -> tuple[Path, Path]:
    """A float32 artifact exported by the real exporter, and an eval file for it (also inside
    the artifact as ``eval.json`` when ``embed_eval``)."""
    from device_bench import evalfile
    from exporters import export_ir

    ir = make_ir(num_users=40, num_items=150, dim=8, seed=seed, string_ids=True)
    art = root / f"art-{target}"
    records = float_reference(ir, range(12))
    extra = {"eval.json": evalfile.encode_eval(records, k=20, item_ids=ir.item_ids,
                                               user_ids=ir.user_ids)} if embed_eval else None
    export_ir(ir, art, target, k=20, history_capacity=16, extra_files=extra)
    ev = evalfile.write_eval(root / f"eval-{target}.json", records, k=20, item_ids=ir.item_ids,
                             user_ids=ir.user_ids)
    return art, ev


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """``edgerec ARGS`` in a subprocess; with ``ok``, it must succeed."""
    p = subprocess.run([sys.executable, "-m", "edgerec", *args], capture_output=True, text=True,
                       timeout=600)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def assert_one_line_error(p: subprocess.CompletedProcess[str], needle: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert needle in lines[0], lines[0]


def tflite_half_scales(data: bytes) -> dict[str, list[np.ndarray]]:
    """Per signature of a TFLite file: the float16 constants its DEQUANTIZE ops widen."""
    from ai_edge_litert import schema_py_generated as schema

    from exporters.tflite.flatbuffer import op_name

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    out: dict[str, list[np.ndarray]] = {}
    for sig in model.signatureDefs:
        sg = model.subgraphs[sig.subgraphIndex]
        found = out.setdefault(sig.signatureKey.decode(), [])
        for op in sg.operators:
            t = sg.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) else None
            if op_name(model, op.opcodeIndex, schema) == "DEQUANTIZE" and \
                    t.type == schema.TensorType.FLOAT16:
                found.append(np.frombuffer(bytes(model.buffers[t.buffer].data), np.float16))
    return out
