"""Shared fixtures: a small synthetic dataset and a LightGCN checkpoint trained on it once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
LASTFM = SHARED / "lastfm"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgerec.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("data") / "synthetic", num_users=300,
                           num_items=600, communities=8, seed=1)


@pytest.fixture(scope="session")
def trained_ckpt(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgerec.checkpoint import save_checkpoint
    from edgerec.data import load_data
    from edgerec.trainer import TrainConfig, train

    data = load_data(synthetic_dir)
    result = train(data, TrainConfig(dim=16, layers=2, epochs=30, batch_size=2048, lr=2e-2,
                                     eval_every=10, patience=3, seed=0, threads=1))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt", result.model, data,
                           result.checkpoint_config())


@pytest.fixture(scope="session")
def lastfm_dir() -> Path:
    if not (LASTFM / "train.txt").is_file():
        pytest.skip(f"real data not present at {LASTFM}")
    return LASTFM
