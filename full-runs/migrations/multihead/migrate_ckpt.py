"""One-off, with migrate_h1.py: the kept single-head runs' checkpoints name the init their
config.yaml now names (init=aligned_small_id, under which these runs start from the same
weights). Each checkpoint's state.pt gets the renamed config; its checksums are recomputed;
model.safetensors is not touched. Afterwards every checkpoint loads against its config.yaml."""
import hashlib
import io
import json
import sys
from pathlib import Path

import torch

from iclreg.train.checkpoint import CHECKSUMS, checkpoint_dirs, load_checkpoint, planned_configs
from iclreg.train.run import read_run_config

root = Path(sys.argv[1])
for run in sorted(root.glob("*_H1/seed*")):
    config = read_run_config(run).to_dict()
    if "init=aligned_small_id" not in config["model"]:
        continue
    for ckpt_dir in checkpoint_dirs(run):
        ckpt = load_checkpoint(ckpt_dir)  # checksums verified
        state = ckpt.state
        if state["config"] in planned_configs(config):
            print("fine   ", ckpt_dir)
            continue
        old = state["config"]["model"]
        assert old == config["model"].replace("init=aligned_small_id", "init=small_id"), (old, config["model"])
        state["config"] = {**state["config"], "model": config["model"]}
        assert state["config"] in planned_configs(config)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        sums = json.loads((ckpt_dir / CHECKSUMS).read_text())
        sums["state.pt"] = hashlib.sha256(data).hexdigest()
        (ckpt_dir / "state.pt").write_bytes(data)
        (ckpt_dir / CHECKSUMS).write_text(json.dumps(sums, indent=1))
        load_checkpoint(ckpt_dir, config)  # loads against config.yaml now
        print("renamed", ckpt_dir)
