"""Optimisers and learning-rate schedules built from their configs."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .config import OptimizerConfig, ScheduleConfig


def build_optimizer(
    config: OptimizerConfig,
    groups: nn.Module | Sequence[tuple[Iterable[nn.Parameter], float]],
    capturable: bool = False,
) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD over a model's parameters, or over (parameters, lr) groups, one per
    ensemble member (each group keeps its own learning rate and state).

    ``capturable`` builds Adam/AdamW for CUDA-graph capture: state and learning rate live on
    the device (the scheduler then fills the lr tensors in place).
    """
    if isinstance(groups, nn.Module):
        groups = [(groups.parameters(), config.lr)]
    param_groups = [{"params": list(params), "lr": lr} for params, lr in groups]
    if config.name == "sgd":
        return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    if capturable:
        device = param_groups[0]["params"][0].device
        for group in param_groups:
            group["lr"] = torch.tensor(group["lr"], device=device)
        return cls(param_groups, lr=torch.tensor(config.lr, device=device), betas=config.betas,
                   weight_decay=config.weight_decay, capturable=True)
    # the fused CPU kernel updates every tensor in one pass: ~10% of a small model's step
    fused = param_groups[0]["params"][0].device.type == "cpu"
    return cls(param_groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
               fused=fused or None)


def lr_factor(config: ScheduleConfig, step: int, total: int) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) of ``total`` steps."""
    if config.warmup and step < config.warmup:
        return (step + 1) / config.warmup
    if config.name == "constant":
        return 1.0
    span = max(1.0, config.decay * (total - config.warmup))  # the decaying steps, at the end
    progress = max(0.0, (step - total + span) / span)
    floor = config.min_lr_ratio
    if config.name == "linear":
        return floor + (1 - floor) * (1 - progress)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    config: ScheduleConfig, optimizer: torch.optim.Optimizer, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, total))


def set_scheduled_lrs(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set every parameter group's learning rate to the schedule's value at the scheduler's
    step, ``base_lr * lr_factor(step, total)`` (in place where the rate is a tensor: CUDA graphs).

    Call it after loading a checkpoint: the loaded groups hold the rate of the plan the run had
    when it was saved, and a run extended since (``extend.py``) follows its new plan from that
    step on. For a run that was not extended this is the rate loaded, the same product."""
    step = scheduler.last_epoch
    for group, factor, base in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas,
                                   scheduler.base_lrs, strict=True):
        lr = base * factor(step)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
