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
from safetensors.torch import load_file, save

from edgerec._version import __version__
from edgerec.atomic_dir import atomic_directory
from edgerec.data import Interactions, Split
from edgerec.errors import CheckpointError
from edgerec.models import MODEL_KINDS, build_model
from edgerec.versioned_json import read_header, read_id_list
from runtime.artifact import is_finite_number, is_int, sha256_file

CKPT_FORMAT = "edgerec-checkpoint"
CKPT_FORMAT_VERSION = 1
_FILES = ("weights.safetensors", "graph.safetensors", "users.json", "items.json")
IN_MEMORY = Path("<in memory>")  # the path of a checkpoint that has not been written


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


def _serialized(model: torch.nn.Module, data: Interactions) -> dict[str, bytes]:
    """Every file of a checkpoint but ``config.json``, as the bytes written to disk."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    graph = {}
    for name in ("train", "valid", "test"):
        s = data.split(name)
        graph[f"{name}_users"] = torch.from_numpy(s.users.astype(np.int64))
        graph[f"{name}_items"] = torch.from_numpy(s.items.astype(np.int64))
    return {"weights.safetensors": save(state), "graph.safetensors": save(graph),
            "users.json": json.dumps(data.user_ids).encode(),
            "items.json": json.dumps(data.item_ids).encode()}


def _full_config(config: dict[str, Any], data: Interactions, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "format": CKPT_FORMAT, "format_version": CKPT_FORMAT_VERSION,
        "edgerec_version": __version__, **config,
        "num_users": data.num_users, "num_items": data.num_items,
        "data": {"fingerprint": data.fingerprint(), "source": data.source,
                 "synthetic": data.synthetic, "dropped": data.dropped},
        "files": {f: hashlib.sha256(files[f]).hexdigest() for f in _FILES},
    }


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, data: Interactions,
                    config: dict[str, Any], overwrite: bool = False) -> Path:
    """Write a checkpoint directory atomically (temp dir beside ``path``, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path} exists (use --overwrite to replace it)")
    files = _serialized(model, data)
    with atomic_directory(path) as tmp:
        for name, blob in files.items():
            (tmp / name).write_bytes(blob)
        (tmp / "config.json").write_text(json.dumps(_full_config(config, data, files), indent=2))
    return path


def in_memory_checkpoint(model: torch.nn.Module, data: Interactions,
                         config: dict[str, Any]) -> Checkpoint:
    """A checkpoint that has not been written: its config and fingerprint are those
    :func:`save_checkpoint` would write, so what is compiled from it is the same."""
    return Checkpoint(IN_MEMORY, _full_config(config, data, _serialized(model, data)), model, data)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load and validate a checkpoint; anything off raises :class:`CheckpointError` (one line)."""
    root = Path(path)
    cfg_file = root / "config.json"
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a checkpoint directory")
    if not cfg_file.is_file():
        raise CheckpointError(f"{root}: not an edgerec checkpoint (no config.json)")
    config = read_header(cfg_file, CKPT_FORMAT, CKPT_FORMAT_VERSION, "checkpoint", CheckpointError)
    sizes = _check_config(cfg_file, config)
    for f in _FILES:
        p = root / f
        if not p.is_file():
            raise CheckpointError(f"{root}: missing {f}")
        if config["files"].get(f) != sha256_file(p):
            raise CheckpointError(f"{p}: does not match the SHA-256 in config.json (truncated, corrupt or replaced)")
    model = _load_model(root, config)
    splits = _load_splits(root / "graph.safetensors", sizes.num_users, sizes.num_items)
    user_ids = _read_ids(root / "users.json", sizes.num_users)
    item_ids = _read_ids(root / "items.json", sizes.num_items)
    d = config.get("data", {})
    data = Interactions(num_users=sizes.num_users, num_items=sizes.num_items, train=splits["train"],
                        valid=splits["valid"], test=splits["test"], user_ids=user_ids,
                        item_ids=item_ids, source=str(d.get("source", root)),
                        synthetic=bool(d.get("synthetic", False)), dropped=dict(d.get("dropped", {})))
    return Checkpoint(root, config, model, data)


# Far above any useful depth (these models use 1-4 layers), low enough that building the
# model's modules to compare their shapes with the weights stays instant.
MAX_LAYERS = 64


@dataclass(frozen=True)
class _Sizes:
    """The counts of a checkpoint's config, checked for type and range."""

    num_users: int
    num_items: int
    dim: int
    layers: int


def _int_field(cfg_file: Path, config: dict[str, Any], key: str, low: int, high: int | None = None,
               default: int | None = None) -> int:
    """``config[key]`` as an int in ``[low, high]``, or a one-line error naming the field."""
    if key not in config and default is not None:
        return default
    v = config.get(key)
    if not is_int(v) or v < low or (high is not None and v > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise CheckpointError(f"{cfg_file}: {key!r} must be an integer {bound}, got {v!r}"[:300])
    return int(v)


def _check_config(cfg_file: Path, config: dict[str, Any]) -> _Sizes:
    """Type- and range-check every field the loader and the passes read, so a hand-edited
    config.json fails here with its name rather than deep inside torch or a pass."""
    kind = config.get("model")
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"{cfg_file}: unknown model kind {kind!r}")
    sizes = _Sizes(_int_field(cfg_file, config, "num_users", 1), _int_field(cfg_file, config, "num_items", 1),
                   _int_field(cfg_file, config, "dim", 1), _int_field(cfg_file, config, "layers", 0, MAX_LAYERS))
    if config.get("head", "dot") not in ("dot", "mlp"):
        raise CheckpointError(f"{cfg_file}: 'head' must be 'dot' or 'mlp', got {config.get('head')!r}")
    _int_field(cfg_file, config, "hidden", 1, default=64)
    _int_field(cfg_file, config, "num_features", 0, default=0)
    for key in ("in_channels", "hidden_channels"):  # sage/gcn/gat widths other than dim's
        _int_field(cfg_file, config, key, 1, default=sizes.dim)
    slope = config.get("negative_slope", 0.2)  # gat's LeakyReLU
    if not is_finite_number(slope):
        raise CheckpointError(f"{cfg_file}: 'negative_slope' must be a finite number, got {slope!r}"[:300])
    files = config.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CheckpointError(f"{cfg_file}: 'files' must map file names to SHA-256 strings")
    _check_data_section(cfg_file, config.get("data", {}))
    return sizes


def _check_data_section(cfg_file: Path, d: Any) -> None:
    """The ``data`` record: where the graph came from and what loading dropped."""
    if not isinstance(d, dict):
        raise CheckpointError(f"{cfg_file}: 'data' must be an object, got {type(d).__name__}")
    checks = {"source": lambda v: isinstance(v, str), "synthetic": lambda v: isinstance(v, bool),
              "fingerprint": lambda v: v is None or isinstance(v, str),
              "dropped": lambda v: isinstance(v, dict) and all(is_int(n) for n in v.values())}
    for key, ok in checks.items():
        if key in d and not ok(d[key]):
            raise CheckpointError(f"{cfg_file}: malformed 'data.{key}' ({d[key]!r})"[:300])


def _load_model(root: Path, config: dict[str, Any]) -> torch.nn.Module:
    """The model with its weights, built only once the weights' shapes match the config: a
    forged count must not make torch allocate terabytes."""
    cfg_file, weights = root / "config.json", root / "weights.safetensors"
    state = _load_safetensors(weights)
    try:
        with torch.device("meta"):  # shapes only, no storage
            expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{cfg_file}: cannot build the model ({e.__class__.__name__}: {e})") from None
    got = {k: tuple(v.shape) for k, v in state.items()}
    diff = [f"{k} {got.get(k)} vs {expected.get(k)}" for k in sorted(set(got) | set(expected))
            if got.get(k) != expected.get(k)]
    if diff:
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise CheckpointError(f"{weights}: tensors do not match the config's model "
                              f"(file vs config: {'; '.join(diff[:3])}{more})")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise CheckpointError(f"{weights}: weights contain NaN or Inf")
    model = build_model(config)
    model.load_state_dict(state)
    model.eval()
    return model


def _load_splits(path: Path, num_users: int, num_items: int) -> dict[str, Split]:
    """The train/valid/test interactions, as integer index arrays within the config's counts."""
    graph = _load_safetensors(path)
    splits = {}
    for name in ("train", "valid", "test"):
        try:
            ut, it = graph[f"{name}_users"], graph[f"{name}_items"]
        except KeyError:
            raise CheckpointError(f"{path}: no {name} interactions") from None
        if ut.dtype not in (torch.int32, torch.int64) or it.dtype not in (torch.int32, torch.int64):
            raise CheckpointError(f"{path}: {name} interactions are {ut.dtype}/{it.dtype}, not integer indices")
        u, i = ut.numpy().astype(np.int64), it.numpy().astype(np.int64)
        if u.shape != i.shape or u.ndim != 1 or (u.size and (u.min() < 0 or u.max() >= num_users
                                                            or i.min() < 0 or i.max() >= num_items)):
            raise CheckpointError(f"{path}: {name} interactions out of range")
        splits[name] = Split(u, i)
    if len(splits["train"]) == 0:
        raise CheckpointError(f"{path}: empty training graph")
    return splits


def _read_ids(path: Path, count: int) -> list[str]:
    """An id map (position = dense index): a JSON list of ``count`` distinct strings."""
    try:
        text = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    ids = read_id_list(path, text, CheckpointError)
    if len(ids) != count:
        raise CheckpointError(f"{path}: {len(ids)} ids, but config.json counts {count}")
    if len(set(ids)) != len(ids):
        raise CheckpointError(f"{path}: duplicate ids")
    return ids


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise CheckpointError(f"{path}: not a valid safetensors file ({msg})") from None
