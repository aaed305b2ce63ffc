"""Run directories: the resolved config, metrics, checkpoints and figures of one training run.

    RUN_DIR/config.yaml            the resolved experiment config
    RUN_DIR/metrics.jsonl          one JSON object per line, each with its step (deterministic)
    RUN_DIR/timing.jsonl           wall-clock seconds per logged step (see metrics.py)
    RUN_DIR/checkpoints/step_N/    model.safetensors + state.pt + checksums.json (checkpoint.py)
    RUN_DIR/eval.json              the final evaluation; its presence marks a finished run
    RUN_DIR/loss.png, eval.png     figures (loss.pdf, eval.pdf beside them for papers)
    RUN_DIR/.lock                  held by the one process writing the run (lock.py)
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from ..device import DTYPES, resolve_device
from ..errors import UsageError, check
from ..models import MODELS, Predictor
from ..yamlfile import load as load_yaml
from .checkpoint import checkpoint_dirs, checkpoint_step, load_checkpoint
from .config import ExperimentConfig, resolve


def build_model(config: ExperimentConfig, device: torch.device | str = "cpu") -> Predictor:
    """The model of ``config``, its initial weights drawn on the CPU from a generator seeded
    with ``train.seed`` (the global RNG is not touched)."""
    model = MODELS.build(config.model).build(torch.Generator().manual_seed(config.train.seed))
    return model.to(device=device, dtype=DTYPES[config.run.dtype])


def read_run_config(run_dir: str | Path) -> ExperimentConfig:
    """The resolved config stored in a run directory."""
    path = Path(run_dir) / "config.yaml"
    check(Path(run_dir).is_dir(), f"run directory '{run_dir}' does not exist")
    check(path.is_file(), f"'{run_dir}' is not a run directory: it has no config.yaml")
    try:
        data = load_yaml(path.read_text(), f"'{path}'")
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UsageError(f"'{path}' is malformed: {str(err).splitlines()[0]}") from None
    check(isinstance(data, dict), f"'{path}' is empty or not a mapping of sections; restore the "
                                  "run's config (checkpoints hold a copy in state.pt)")
    return resolve(data)


def load_run(
    run_dir: str | Path, device: str = "cpu", step: int | None = None
) -> tuple[Predictor, ExperimentConfig]:
    """The trained model (latest checkpoint, or ``step``) and the config of a run.

    Returns:
        (model in eval mode on ``device``, config).
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    dirs = checkpoint_dirs(run_dir)
    check(bool(dirs), f"run '{run_dir}' has no checkpoint yet")
    if step is not None:
        dirs = [p for p in dirs if checkpoint_step(p) == step]
        check(bool(dirs), f"run '{run_dir}' has no checkpoint at step {step}")
    ckpt = load_checkpoint(dirs[-1], config.to_dict())
    model = build_model(config, resolve_device(device))
    load_weights(model, ckpt.weights, dirs[-1])
    return model.eval(), config


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """Load a checkpoint's weights into ``model``; a mismatch is damage, not a traceback."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).splitlines()[0][:200]
        raise UsageError(f"checkpoint '{path}' does not fit the run's model ({first}); delete it "
                         "to resume from an earlier checkpoint, or start a new run") from None


def iter_checkpoints(run_dir: Path, device: str = "cpu", initial: bool = False):
    """(step, model) at each checkpoint of a run, oldest first; one model, reloaded in place.

    ``initial``: first yield the model at step 0 as the run's seed initialises it (a run keeps
    no checkpoint of its initialisation). The model is in eval mode; copy what you keep.
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = build_model(config, device).eval()
    if initial:
        yield 0, model
    for path in checkpoint_dirs(run_dir):
        ckpt = load_checkpoint(path, config.to_dict())
        load_weights(model, ckpt.weights, path)
        yield ckpt.step, model
