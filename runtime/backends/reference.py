"""The numpy reference backend: serves a ``numpy``-target artifact from its tables.

It computes the contract's math directly (``docs/architecture.md``), so it needs no
interpreter at all and is the yardstick the interpreted targets are compared with. By default
it scores with the artifact's own ``quantization.activations``; ``activations=`` overrides
that, so the same int8 tables reproduce a TFLite (``dynamic-int8-symmetric``) or ONNX
(``dynamic-uint8-asymmetric``) artifact's integer arithmetic exactly (see ``runtime.quant``).
"""

from __future__ import annotations

import numpy as np

from runtime.artifact import Artifact
from runtime.errors import ArtifactError, InvalidArgumentError
from runtime.quant import ACTIVATIONS, dequantize_rows, score_items

MASK = np.float32(-1e9)


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
        t = artifact.tables
        self._item = t["item"][0][: self._n], _rows(t["item"][1], self._n)
        self._user = t.get("user")
        hist = t.get("history_item")
        self._hist = None if hist is None else (hist[0][: self._n], _rows(hist[1], self._n))

    def lookup(self, user: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._user is None:
            raise ArtifactError("the artifact has no 'user' table")
        u = int(user[0])
        values, scale = self._user
        row = dequantize_rows(values[u: u + 1], None if scale is None else scale[u: u + 1])[0]
        return self._topk(row, exclude)

    def history(self, items: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._hist is None:
            raise ArtifactError("the artifact has no 'history_item' table")
        n = int(length[0])
        idx = items[:n]
        values, scale = self._hist
        rows = dequantize_rows(values[idx], None if scale is None else scale[idx])
        # Row by row, then times rsqrt(n): the order of operations of the exported graphs.
        u = rows.sum(axis=0, dtype=np.float32) * (np.float32(1) / np.sqrt(np.float32(n)))
        return self._topk(u.astype(np.float32), idx)

    def _topk(self, u: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, scale = self._item
        scores = score_items(u, values, scale, self.activations).astype(np.float32)
        ex = exclude[(exclude >= 0) & (exclude < self._n)]
        scores[ex] = MASK
        k = self._k
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        order = np.lexsort((top, -scores[top]))  # best first, ties by index
        top = top[order].astype(np.int32)
        return scores[top], top


def _rows(scale: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if scale is None else scale[:n]


def create(artifact: Artifact, num_threads: int | None, activations: str | None = None) -> ReferenceBackend:
    del num_threads  # numpy's own BLAS threading applies
    return ReferenceBackend(artifact, activations)
