"""Self-contained, pickle-free checkpoints: ``config.json`` + safetensors weights + the graph.

A checkpoint directory holds everything needed to compile later without the original data:

- ``config.json``: format version, model kind and hyperparameters, counts, training recipe,
  data fingerprint and source, metrics, and the SHA-256 of every other file;
- ``weights.safetensors``: the model's parameters (safetensors never executes code on load);
- ``graph.safetensors``: the train/valid/test interactions as index arrays (the training graph
  is what precompute propagates over; valid feeds the accuracy guard);
- ``users.json``, ``items.json``: external ids, position = dense index.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgerec import __version__
from edgerec.atomic_dir import atomic_directory
from edgerec.data import Interactions, Split
from edgerec.errors import CheckpointError
from edgerec.models import MODEL_KINDS, build_model
from edgerec.versioned_json import read_header

CKPT_FORMAT = "edgerec-checkpoint"
CKPT_FORMAT_VERSION = 1
_FILES = ("weights.safetensors", "graph.safetensors", "users.json", "items.json")


@dataclass
class Checkpoint:
    """A loaded checkpoint: its config, the PyG model with weights, and the data splits."""

    path: Path
    config: dict[str, Any]
    model: torch.nn.Module
    data: Interactions

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the weights file: identifies exactly which trained model was compiled."""
        return str(self.config["files"]["weights.safetensors"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, data: Interactions,
                    config: dict[str, Any], overwrite: bool = False) -> Path:
    """Write a checkpoint directory atomically (temp dir beside ``path``, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path} exists (use --overwrite to replace it)")
    with atomic_directory(path) as tmp:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "weights.safetensors"))
        graph = {}
        for name in ("train", "valid", "test"):
            s = data.split(name)
            graph[f"{name}_users"] = torch.from_numpy(s.users.astype(np.int64))
            graph[f"{name}_items"] = torch.from_numpy(s.items.astype(np.int64))
        save_file(graph, str(tmp / "graph.safetensors"))
        (tmp / "users.json").write_text(json.dumps(data.user_ids))
        (tmp / "items.json").write_text(json.dumps(data.item_ids))
        full = {
            "format": CKPT_FORMAT, "format_version": CKPT_FORMAT_VERSION,
            "edgerec_version": __version__, **config,
            "num_users": data.num_users, "num_items": data.num_items,
            "data": {"fingerprint": data.fingerprint(), "source": data.source,
                     "synthetic": data.synthetic, "dropped": data.dropped},
            "files": {f: _sha256(tmp / f) for f in _FILES},
        }
        (tmp / "config.json").write_text(json.dumps(full, indent=2))
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load and validate a checkpoint; anything off raises :class:`CheckpointError` (one line)."""
    root = Path(path)
    cfg_file = root / "config.json"
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a checkpoint directory")
    if not cfg_file.is_file():
        raise CheckpointError(f"{root}: not an edgerec checkpoint (no config.json)")
    config = read_header(cfg_file, CKPT_FORMAT, CKPT_FORMAT_VERSION, "checkpoint", CheckpointError)
    try:
        kind = config["model"]
        if kind not in MODEL_KINDS:
            raise CheckpointError(f"{cfg_file}: unknown model kind {kind!r}")
        num_users, num_items = int(config["num_users"]), int(config["num_items"])
        dim, layers = int(config["dim"]), int(config["layers"])
        files = dict(config["files"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfg_file}: malformed config ({e.__class__.__name__}: {e})") from None
    if min(num_users, num_items, dim) < 1 or layers < 0:
        raise CheckpointError(f"{cfg_file}: counts and sizes must be positive")
    for f in _FILES:
        p = root / f
        if not p.is_file():
            raise CheckpointError(f"{root}: missing {f}")
        if files.get(f) != _sha256(p):
            raise CheckpointError(f"{p}: does not match the SHA-256 in config.json (truncated, corrupt or replaced)")
    state = _load_safetensors(root / "weights.safetensors")
    try:
        model = build_model(config)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfg_file}: cannot build the model ({e.__class__.__name__}: {e})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        raise CheckpointError(f"{root / 'weights.safetensors'}: tensors {got} do not match the config's model {expected}")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise CheckpointError(f"{root / 'weights.safetensors'}: weights contain NaN or Inf")
    model.load_state_dict(state)
    model.eval()
    graph = _load_safetensors(root / "graph.safetensors")
    splits = {}
    for name in ("train", "valid", "test"):
        try:
            u = graph[f"{name}_users"].numpy().astype(np.int64)
            i = graph[f"{name}_items"].numpy().astype(np.int64)
        except KeyError:
            raise CheckpointError(f"{root / 'graph.safetensors'}: no {name} interactions") from None
        if u.shape != i.shape or u.ndim != 1 or (u.size and (u.min() < 0 or u.max() >= num_users
                                                            or i.min() < 0 or i.max() >= num_items)):
            raise CheckpointError(f"{root / 'graph.safetensors'}: {name} interactions out of range")
        splits[name] = Split(u, i)
    if len(splits["train"]) == 0:
        raise CheckpointError(f"{root / 'graph.safetensors'}: empty training graph")
    user_ids = json.loads((root / "users.json").read_text())
    item_ids = json.loads((root / "items.json").read_text())
    if len(user_ids) != num_users or len(item_ids) != num_items:
        raise CheckpointError(f"{root}: id maps do not match the config's counts")
    d = config.get("data", {})
    data = Interactions(num_users=num_users, num_items=num_items, train=splits["train"],
                        valid=splits["valid"], test=splits["test"], user_ids=user_ids,
                        item_ids=item_ids, source=str(d.get("source", root)),
                        synthetic=bool(d.get("synthetic", False)), dropped=dict(d.get("dropped", {})))
    return Checkpoint(root, config, model, data)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise CheckpointError(f"{path}: not a valid safetensors file ({msg})") from None
