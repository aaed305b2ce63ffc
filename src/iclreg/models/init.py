"""Initial weights from an explicit generator: PyTorch's default initialisations, replayed.

``nn.Linear``, ``nn.Embedding`` and ``nn.LSTM`` draw their initial values from torch's global
generator as they are constructed. Models here construct such submodules inside
:func:`uninitialised` (shapes only: the meta device, no draw) and then draw every value from
an explicit ``torch.Generator`` (STYLE rule 7) with :func:`default_init_`, which repeats
PyTorch's own ``reset_parameters`` (same distributions, same order of modules and draws):

    Linear(f_in, f_out):  W, b ~ U(-1/sqrt(f_in), 1/sqrt(f_in))   (kaiming_uniform_, a = sqrt(5))
    Embedding:            W ~ N(0, 1)
    LSTM / GRU / RNN:     every parameter ~ U(-1/sqrt(h), 1/sqrt(h)), h the hidden size
    LayerNorm:            weight 1, bias 0 (no draw)

So a generator seeded with s gives bit for bit the weights that the default construction
gives after ``torch.manual_seed(s)`` on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def uninitialised(module: nn.Module) -> Iterator[None]:
    """Submodules constructed inside get shapes but no values and consume no random draw.

    Inside, the default device is ``meta``; on exit every parameter and buffer of ``module``
    gets uninitialised memory on the device the construction would have used (the default
    device outside, e.g. ``meta`` again under ``with torch.device("meta")``). Construct all of
    ``module``'s parameters inside, then fill them (``default_init_`` or ``nn.init``).
    """
    device = torch.get_default_device()
    with torch.device("meta"):
        yield
    module.to_empty(device=device)


@torch.no_grad()
def default_init_(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """PyTorch's default initialisation of every submodule of ``module``, drawn from ``generator``.

    Modules are visited in ``module.modules()`` order, which is their construction order when
    each is assigned as it is built. ``None`` draws from torch's global generator, as the
    construction itself does.

    Raises:
        TypeError: for a module with parameters of its own whose default is not listed here.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                bound = 1 / math.sqrt(m.in_features) if m.in_features > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, generator=generator)
            if m.padding_idx is not None:
                m.weight[m.padding_idx].fill_(0)
        elif isinstance(m, nn.RNNBase):
            bound = 1.0 / math.sqrt(m.hidden_size) if m.hidden_size > 0 else 0
            for p in m.parameters():
                nn.init.uniform_(p, -bound, bound, generator=generator)
        elif isinstance(m, nn.LayerNorm):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif next(m.parameters(recurse=False), None) is not None:
            raise TypeError(f"default_init_: no default initialisation for {type(m).__name__}")
