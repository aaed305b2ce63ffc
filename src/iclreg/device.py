"""Where and in which precision iclreg computes: the one place that turns the ``device`` and
``dtype`` strings of configs and command lines into torch objects."""

from __future__ import annotations

import torch

from .errors import UsageError, check

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str) -> torch.device:
    """Validate a device string, with an actionable error for an absent GPU."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device '{device}'; use cpu or cuda") from None
    if dev.type == "cuda":
        check(torch.cuda.is_available(), f"device '{device}' is not available; use --device cpu")
    else:
        check(dev.type == "cpu", f"unsupported device '{device}'; use cpu or cuda")
    return dev
