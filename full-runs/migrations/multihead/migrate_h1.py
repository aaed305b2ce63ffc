"""One-off: the single-head multihead runs move from init=small_id to init=aligned_small_id.
A finished run whose initial weights are the same under both (its OV label entry is positive)
keeps its training: its config.yaml names the new init. Every other single-head run (its head
started at omega mu < 0, or it is unfinished) is removed, to be trained again."""
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch

from iclreg.train.plan import finished
from iclreg.train.run import build_model, read_run_config

root = Path(sys.argv[1])
dry = "--dry" in sys.argv
for run in sorted(root.glob("*_H1/seed*")):
    cfg = read_run_config(run)
    if "init=aligned_small_id" in cfg.model:
        print("already", run)
        continue
    assert "init=small_id" in cfg.model, cfg.model
    new = replace(cfg, model=cfg.model.replace("init=small_id", "init=aligned_small_id"))
    old_model, new_model = build_model(cfg), build_model(new)
    same = all(torch.equal(a, b) for a, b in zip(old_model.state_dict().values(), new_model.state_dict().values(),
                                                  strict=True))
    if same and finished(run):
        text = (run / "config.yaml").read_text()
        assert text.count("init=small_id") == 1
        print("keep  ", run)
        if not dry:
            (run / "config.yaml").write_text(text.replace("init=small_id", "init=aligned_small_id"))
    else:
        print("remove", run, "same init" if same else "other init", "finished" if finished(run) else "unfinished")
        if not dry:
            shutil.rmtree(run)
