"""The one place device and dtype strings become torch objects (``iclreg.device``)."""

from __future__ import annotations

import importlib

import pytest
import torch

import iclreg.cli as cli
import iclreg.train.preflight as preflight
import iclreg.train.run as run
from iclreg.device import DTYPES, resolve_device
from iclreg.errors import UsageError

compare = importlib.import_module("iclreg.analysis.compare")  # the package exports compare()


def test_dtypes_name_the_two_float_precisions():
    assert DTYPES == {"float32": torch.float32, "float64": torch.float64}


def test_every_user_shares_the_one_table_and_resolver():
    assert cli.DTYPES is run.DTYPES is preflight.DTYPES is DTYPES
    assert compare.resolve_device is run.resolve_device is preflight.resolve_device is resolve_device


def test_cpu_resolves_to_a_torch_device():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(("device", "message"), [("gpu", "unknown device 'gpu'"),
                                                 ("meta", "unsupported device 'meta'")])
def test_a_bad_device_is_a_usage_error(device, message):
    with pytest.raises(UsageError, match=message):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_an_absent_gpu_says_to_use_the_cpu():
    with pytest.raises(UsageError, match="not available; use --device cpu"):
        resolve_device("cuda")
