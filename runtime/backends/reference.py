"""The numpy reference backend: serves a ``numpy``-target artifact from its tables.

It computes the contract's math directly (``docs/architecture.md``), so it needs no
interpreter at all and is the yardstick the interpreted targets are compared with. By default
it scores with the artifact's own ``quantization.activations``; ``activations=`` overrides
that, so the same int8 tables reproduce a TFLite (``dynamic-int8-symmetric``) or ONNX
(``dynamic-uint8-asymmetric``) artifact's integer arithmetic exactly (see ``runtime.quant``).

The device-side programs are module functions (:func:`history_vector`, :func:`mlp_scores`):
the exporters' parity check runs the same code on the IR's tables, in the op order of the
exported graphs. The history programs (lightgcn / sage / gcn / gat) are those of a *new* user
(no per-user state ships), the MLP head keeps its dense weights float, so an MLP artifact has
no activation quantization (``activations`` only affects the dot scorer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.artifact import MASK, Artifact, program
from runtime.errors import ArtifactError, InvalidArgumentError
from runtime.quant import ACTIVATIONS, ProductCodes, dequantize_rows, score_items

# (values, per-row scale or None); indexing product codes returns decoded rows
Tab = tuple["np.ndarray | ProductCodes", "np.ndarray | None"]


def _rows(table: Tab, idx: np.ndarray | slice) -> np.ndarray:
    values, scale = table
    return dequantize_rows(values[idx], None if scale is None else scale[idx])


def history_vector(kind: str, tables: dict[str, Tab], items: np.ndarray, n: int,
                   negative_slope: float = 0.2) -> np.ndarray:
    """A new user's vector [d] from its first ``n`` history items, as the graphs compute it:
    row sums in row order, then (lightgcn) ``* 1/sqrt(n)``, (sage) ``/ n + user_default``,
    (gcn) ``* 1/sqrt(n+1) + user_default``, (gat) softmax-weighted sum + ``history_bias``."""
    idx = items[:n]
    rows = _rows(tables["history_item"], idx)
    f = np.float32
    if kind == "lightgcn":
        return (rows.sum(axis=0, dtype=f) * (f(1) / np.sqrt(f(n)))).astype(f)
    if kind in ("sage", "gcn"):
        total = rows.sum(axis=0, dtype=f)
        u = total / f(n) if kind == "sage" else total * (f(1) / np.sqrt(f(n) + f(1)))
        return (u + _rows(tables["user_default"], slice(0, 1))[0]).astype(f)
    if kind == "gat":
        s = _rows(tables["history_logit"], idx)[:, 0]
        s = np.where(s > 0, s, s * f(negative_slope)).astype(f)
        e = np.exp(s - s.max(), dtype=f)
        w = e / e.sum(dtype=f)
        u = (rows * w[:, None]).sum(axis=0, dtype=f)
        return (u + _rows(tables["history_bias"], slice(0, 1))[0]).astype(f)
    raise ArtifactError(f"unknown history program {kind!r}")


def mlp_scores(u: np.ndarray, tables: dict[str, Tab]) -> np.ndarray:
    """Scores of every item [I] with the MLP head: ``relu([u, 1] [W1_user; b1] + T_i) . w2 + b2``
    (dense weights float32, ``T = mlp_item`` dequantized per row)."""
    f = np.float32
    w1b = np.concatenate([_rows(tables["mlp_w1_user"], slice(None)), _rows(tables["mlp_b1"], slice(None))])
    u1 = np.concatenate([np.asarray(u, f).reshape(-1), np.ones(1, f)])
    hu = (u1[:, None] * w1b).sum(axis=0, dtype=f)
    hidden = np.maximum(_rows(tables["mlp_item"], slice(None)) + hu, f(0))
    s = hidden @ _rows(tables["mlp_w2"], slice(None))[:, 0]
    return (s + _rows(tables["mlp_b2"], slice(None))[0, 0]).astype(f)


def check_available() -> None:
    """numpy is always there."""


class ReferenceBackend:
    name = "reference"
    thread_safe = True  # read-only tables, no shared scratch

    def __init__(self, artifact: Artifact, activations: str | None = None) -> None:
        m = artifact.manifest
        act = m["quantization"]["activations"] if activations is None else activations
        if act not in ACTIVATIONS:
            raise InvalidArgumentError(f"unknown activations {act!r}; choose one of {list(ACTIVATIONS)}")
        self.activations = act
        self._n = artifact.num_items
        self._k = int(m["k"])
        self._scorer, self._program = program(m)
        self._slope = float(m.get("history", {}).get("negative_slope", 0.2))
        # item-indexed tables lose the optional pad row; the others are used whole
        self._tables: dict[str, Any] = {
            name: (_head(v, self._n), _cut(s, self._n)) if name in _ITEM_ROWS else (v, s)
            for name, (v, s) in artifact.tables.items()}
        self._user = self._tables.get("user")

    def lookup(self, user: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._user is None:
            raise ArtifactError("the artifact has no 'user' table")
        u = int(user[0])
        values, scale = self._user
        row = dequantize_rows(values[u: u + 1], None if scale is None else scale[u: u + 1])[0]
        return self._topk(row, exclude)

    def history(self, items: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if "history_item" not in self._tables:
            raise ArtifactError("the artifact has no 'history_item' table")
        n = int(length[0])
        u = history_vector(self._program, self._tables, items, n, self._slope)
        return self._topk(u, items[:n])

    def _topk(self, u: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._scorer == "mlp":
            scores = mlp_scores(u, self._tables)
        else:
            values, scale = self._tables["item"]
            scores = score_items(u, values, scale, self.activations).astype(np.float32)
        ex = exclude[(exclude >= 0) & (exclude < self._n)]
        scores[ex] = MASK
        k = self._k
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        order = np.lexsort((top, -scores[top]))  # best first, ties by index
        top = top[order].astype(np.int32)
        return scores[top], top


_ITEM_ROWS = ("item", "history_item", "history_logit", "mlp_item")


def _cut(scale: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if scale is None else scale[:n]


def _head(values: np.ndarray | ProductCodes, n: int) -> np.ndarray | ProductCodes:
    """The first ``n`` rows, still coded for product codes (whose indexing decodes)."""
    return values.head(n) if isinstance(values, ProductCodes) else values[:n]


def create(artifact: Artifact, num_threads: int | None, activations: str | None = None) -> ReferenceBackend:
    del num_threads  # numpy's own BLAS threading applies
    return ReferenceBackend(artifact, activations)
