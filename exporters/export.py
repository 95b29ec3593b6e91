"""``export_ir``: IR -> verified artifact directory (model file(s), id maps, manifest).

The directory is built beside ``out`` and renamed into place only after the model passed its
parity check, so an error or Ctrl-C leaves nothing behind and an existing artifact is never
half-replaced. The output is byte-identical for the same IR and options.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgerec.atomic_dir import atomic_directory
from edgerec.errors import ExportError
from edgerec.ir import IR
from exporters import parity
from exporters.registry import REGISTRY, TARGETS
from runtime import artifact

__all__ = ["TARGETS", "export_ir", "ir_fingerprint"]
PARITY_QUERIES = 256


def ir_fingerprint(ir: IR) -> str:
    """SHA-256 over everything an artifact is built from (tables, ids, popular, seen)."""
    h = hashlib.sha256()
    for name in sorted(ir.tables):
        t = ir.tables[name]
        h.update(f"{name}:{t.dtype}:{t.shape}".encode())
        h.update(np.ascontiguousarray(t.values).tobytes())
        if t.scale is not None:
            h.update(np.ascontiguousarray(t.scale).tobytes())
        if t.codebook is not None:
            h.update(np.ascontiguousarray(t.codebook).tobytes())
    for a in (ir.popular, ir.seen_indptr, ir.seen_indices):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps([ir.user_ids, ir.item_ids, list(ir.modes)]).encode())
    return h.hexdigest()


def _versions(toolkit: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of edgerec, numpy and a target's ``toolkit`` (for the manifest)."""
    names = ["edgerec", "numpy", *toolkit]
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            try:
                out[n] = metadata.version(n + "-cpu")
            except metadata.PackageNotFoundError:
                out[n] = "unknown"
    return out


def _check_args(ir: IR, target: str, k: int, history_capacity: int,
                exclude_capacity: int | None) -> int:
    if target not in REGISTRY:
        raise ExportError(f"unknown target {target!r}; choose one of {list(REGISTRY)}")
    scorer = dict(ir.scorer).get("kind")
    missing = [n for n in artifact.SCORER_TABLES["mlp"] if n not in ir.tables]
    if scorer not in artifact.SCORER_TABLES or (scorer == "mlp" and missing):
        raise ExportError(f"the exporters build dot-product scorers and complete MLP heads; this IR "
                          f"has scorer {scorer!r}" + (f" without the tables {missing}" if missing else ""))
    try:
        ir.validate()
    except Exception as e:
        raise ExportError(f"invalid IR: {e}") from None
    if not isinstance(k, int) or not 1 <= k <= ir.num_items:
        raise ExportError(f"k must be an integer in [1, num_items={ir.num_items}], got {k!r}")
    if not isinstance(history_capacity, int) or history_capacity < 1:
        raise ExportError(f"history_capacity must be an integer >= 1, got {history_capacity!r}")
    if exclude_capacity is None:
        counts = np.diff(ir.seen_indptr)
        exclude_capacity = max(int(counts.max()) if counts.size else 0, 1)
    if not isinstance(exclude_capacity, int) or exclude_capacity < 1:
        raise ExportError(f"exclude_capacity must be an integer >= 1, got {exclude_capacity!r}")
    return exclude_capacity


def export_ir(ir: IR, out: str | os.PathLike[str], target: str, *, k: int = 50,
              history_capacity: int = 50, exclude_capacity: int | None = None,
              overwrite: bool = False, min_parity: float = 0.99,
              extra_files: dict[str, bytes] | None = None,
              metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export ``ir`` for ``target`` into the directory ``out``; return the manifest.

    Refuses (``ExportError``, nothing written) when the exported model's top-k agreement with
    the numpy emulation of its own arithmetic is below ``min_parity``.
    """
    exclude_capacity = _check_args(ir, target, k, history_capacity, exclude_capacity)
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists (use overwrite=True / --overwrite to replace it)")
    for name in extra_files or {}:
        p = Path(name)
        if p.is_absolute() or ".." in p.parts or name == artifact.MANIFEST or not name:
            raise ExportError(f"extra file name {name!r} must be a plain relative path")
    with atomic_directory(out) as tmp:
        manifest = _build(ir, tmp, target, k, history_capacity, exclude_capacity, min_parity,
                          extra_files or {}, metrics or {})
    return manifest


def _build(ir: IR, root: Path, target: str, k: int, hcap: int, ecap: int, min_parity: float,
           extra_files: dict[str, bytes], metrics: dict[str, Any]) -> dict[str, Any]:
    queries = parity.sample_queries(ir, n=PARITY_QUERIES, history_capacity=hcap,
                                    exclude_capacity=ecap)
    built = REGISTRY[target].build(ir, k=k, history_capacity=hcap, exclude_capacity=ecap)
    for name, data in built.files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)

    (root / "items.json").write_text(json.dumps(ir.item_ids))
    (root / "users.json").write_text(json.dumps(ir.user_ids))
    np.save(root / "popular.npy", ir.popular.astype(np.int32), allow_pickle=False)
    with_seen = "lookup" in ir.modes
    if with_seen:
        np.save(root / "seen_indptr.npy", ir.seen_indptr, allow_pickle=False)
        np.save(root / "seen_indices.npy", ir.seen_indices.astype(artifact.index_dtype(ir.num_items)),
                allow_pickle=False)
    for name, data in sorted(extra_files.items()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)

    base = dict(target=target, num_users=ir.num_users, num_items=ir.num_items, dim=ir.dim, k=k,
                history_capacity=hcap, exclude_capacity=ecap, modes=list(ir.modes),
                weights=built.weights, activations=built.activations, seen=with_seen,
                external_data=built.data,
                eval_file="eval.json" if "eval.json" in extra_files else None, tables=built.tables,
                toolkit=_versions(REGISTRY[target].toolkit),
                source={"checkpoint_fingerprint": ir.provenance.get("checkpoint_fingerprint"),
                        "ir_fingerprint": ir_fingerprint(ir)},
                scorer=_scorer_spec(ir), history={"kind": ir.history_kind, **dict(ir.history)})
    # a manifest first, so that a runner may read the directory as a device would (numpy target)
    artifact.write_manifest(root, artifact.build_manifest(**base, metrics={}))
    report = parity.compare(ir, built.runner(root), queries, k, built.activations)
    if report[f"agreement@{k}"] < min_parity:
        worst = min(report["modes"].items(), key=lambda kv: kv[1][f"agreement@{k}"])
        raise ExportError(
            f"{target} model disagrees with its numpy emulation: agreement@{k} "
            f"{report[f'agreement@{k}']:.4f} < min_parity {min_parity} (mode {worst[0]}: "
            f"exact {worst[1]['exact_match_rate']:.3f}, max score error "
            f"{worst[1]['max_score_error']:.3g})")
    for key, make_run in built.informative.items():
        other = parity.compare(ir, make_run(), queries, k, built.activations)
        report[key] = {
            mode: {name: v[name] for name in (f"agreement@{k}", "exact_match_rate",
                                              "max_relative_score_error", f"agreement@{k}_vs_float")}
            for mode, v in other["modes"].items()}
    all_metrics = {**dict(ir.metrics), **metrics, "parity": report}
    return artifact.write_manifest(root, artifact.build_manifest(**base, metrics=all_metrics))


def _scorer_spec(ir: IR) -> dict[str, Any]:
    """The manifest's ``scorer`` block (an MLP's hidden width read from its tables)."""
    if ir.scorer.get("kind") != "mlp":
        return {"kind": "dot"}
    return {"kind": "mlp", "hidden": int(ir.tables["mlp_b1"].shape[1]), "activation": "relu"}
