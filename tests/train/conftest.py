"""Shared helpers for the training tests: tiny configs written to a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

TINY = {
    "task": "gaussian:d=3,n=12,noise_std=0.1",
    "model": "softmax_attention:heads=2",
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"steps": 30, "batch": 32, "loss": "query", "seed": 0},
    "eval": {"samples": 64, "estimators": ["ols"]},
    "run": {"checkpoint_every": 10, "log_every": 5},
}


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a subprocess whose torch computes with ``threads`` intra-op threads."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


@pytest.fixture
def write_config(tmp_path: Path):
    """write_config(overrides: dict, name) -> path of a YAML config: TINY updated section-wise."""

    def write(changes: dict | None = None, name: str = "tiny.yaml") -> Path:
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
        for key, value in (changes or {}).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write
