"""Counter-based sampling: every ensemble member's prompts from one vectorised computation.

``Task.sample`` draws one member's prompts from a ``torch.Generator`` seeded by (seed, step);
an ensemble of E members then needs E calls, and at E >= 256 on a GPU that Python loop
dominates the step. A counter-based generator (Salmon et al., "Parallel random numbers: as
easy as 1, 2, 3", SC 2011) has no state: the bits at position c of the stream with key k are
a fixed function h(k, c), so the bits of every member and position are one tensor operation.
Ours is SplitMix64 (Steele, Lea & Flood, OOPSLA 2014) written in torch int64 ops:

    k = mix(mix(mix(seed) + step) + stream),   h(k, c) = mix(k + (c + 1) gamma),
    mix(z) = z ^ (z >> 31) after z <- (z ^ (z >> 30)) m1, z <- (z ^ (z >> 27)) m2,

u = (h >> 11) 2^-53 is uniform on [0, 1), and Box-Muller turns the pair (u_2c, u_2c+1) into
two standard normals sqrt(-2 ln(1 - u_2c)) (cos, sin)(2 pi u_2c+1) (float64 prompts; float32
prompts take one hash per pair: 40 bits for the radius, 24 for the angle, in float32). Each
element depends only on its member's (seed, step) and its position in that member's block,
never on E or the member's place, so a member of an ensemble sees exactly the prompts it sees
trained alone (with ``train.sampler=counter``). This needs elementwise functions that give
the same bits wherever an element falls (a SIMD body or tail): integer ops, +, *, sqrt and,
in torch's CPU kernels, log, log1p, cos and sin (checked by the tests).

The prompts follow the tasks' distributions (``gaussian``, ``sparse``: their w prior, label
noise and covariance of x) but not their streams: ``counter`` and ``stream`` runs differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .base import Task, check_seed
from .gaussian import GaussianTask
from .sparse import SparseTask

SUPPORTED = ("gaussian", "sparse")  # task names the counter sampler draws
_KINDS = (GaussianTask, SparseTask)


def _signed(value: int) -> int:
    """A 64-bit constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


GAMMA = _signed(0x9E3779B97F4A7C15)  # SplitMix64's increment (odd; 2^64 / golden ratio)
M1, M2 = _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)
STREAM_NORMAL, STREAM_SUPPORT = 1, 2  # keys of a member's normals and of its sparse supports


def supports(task: Task) -> bool:
    """Whether the counter sampler draws ``task``'s prompts (``SUPPORTED``, not subclasses)."""
    return type(task) in _KINDS


def _srl(z: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix(z: Tensor) -> Tensor:
    """SplitMix64's finaliser, an invertible mixing of 64 bits (int64, wrapping); in place."""
    t = torch.empty_like(z)
    for shift, factor in ((30, M1), (27, M2), (31, 1)):
        torch.bitwise_right_shift(z, shift, out=t)
        t &= (1 << (64 - shift)) - 1  # a logical shift: torch's >> is arithmetic
        z ^= t
        if factor != 1:
            z *= factor
    return z


def keys(seeds: Sequence[int], step: int, stream: int, device: torch.device | str = "cpu") -> Tensor:
    """One key per member for ``(seed, step, stream)``: (E,) int64."""
    for seed in seeds:
        check_seed(int(seed), "seed")
    s = torch.tensor([int(seed) for seed in seeds], dtype=torch.int64, device=device)
    return mix(mix(mix(s) + int(step)) + int(stream))  # (E,)


def bits(key: Tensor, count: int, start: int = 0) -> Tensor:
    """h(k, c) for start <= c < start + count: (E, count) int64, 64 random bits each."""
    c = torch.arange(start + 1, start + count + 1, dtype=torch.int64, device=key.device) * GAMMA
    return mix(c + key[:, None])


def uniforms(key: Tensor, count: int) -> Tensor:
    """(E, count) float64 uniforms on [0, 1) with 53 random bits each."""
    return _srl(bits(key, count), 11).to(torch.float64) * 2.0**-53


def _box_muller(key: Tensor, start: int, pairs: int, out: Tensor) -> None:
    """Pairs ``start <= p < start + pairs`` of normals into ``out`` (m, pairs, 2).

    float64: two hashes per pair (counters 2p, 2p + 1), 53 bits each. float32: one hash per
    pair, 40 bits for the radius (tails to 7.4 sigma) and 24 for the angle, in float32.
    """
    if out.dtype == torch.float64:
        u = _srl(bits(key, 2 * pairs, 2 * start), 11).to(torch.float64).mul_(2.0**-53)
        u = u.view(-1, pairs, 2)
        r = (-2.0 * torch.log1p(-u[..., 0])).sqrt()  # 1 - u in (0, 1]: r finite
        theta = (2.0 * math.pi) * u[..., 1]
    else:
        h = bits(key, pairs, start)
        v = (_srl(h, 24) + 1).to(torch.float64).mul_(2.0**-40).to(torch.float32)  # (0, 1], exact
        r = (-2.0 * torch.log(v)).sqrt()
        theta = (h & 0xFFFFFF).to(torch.float32).mul_(2.0 * math.pi * 2.0**-24)
    torch.mul(r, torch.cos(theta), out=out[..., 0])
    torch.mul(r, torch.sin(theta), out=out[..., 1])


def normals(key: Tensor, count: int, dtype: torch.dtype = torch.float64, tile: int | None = None) -> Tensor:
    """(E, count) standard normals (float64, or float32 for any other dtype) by Box-Muller;
    element c depends on (k, c) only.

    On the CPU the work goes in tiles of about ``tile`` pairs (default 2^16), whose
    intermediates stay in cache; each element is the same whatever the tiling.
    """
    dtype = torch.float64 if dtype == torch.float64 else torch.float32
    E, pairs = key.shape[0], (count + 1) // 2
    out = torch.empty(E, pairs, 2, dtype=dtype, device=key.device)  # (E, P, 2)
    tile = tile or (2**16 if key.device.type == "cpu" else E * pairs)
    cols = max(1, min(pairs, tile))
    rows = max(1, tile // cols)
    for p0 in range(0, pairs, cols):
        for r0 in range(0, E, rows):
            w = min(cols, pairs - p0)
            _box_muller(key[r0:r0 + rows], p0, w, out[r0:r0 + rows, p0:p0 + w])
    return out.view(E, 2 * pairs)[:, :count]


def _column(values: Sequence[float], dtype: torch.dtype, device: torch.device | str) -> Tensor:
    return torch.tensor(list(values), dtype=dtype, device=device).view(-1, 1, 1)  # (E, 1, 1)


def sample_members(
    tasks: Sequence[Task], seeds: Sequence[int], batch: int, step: int, *, n: int | None = None,
    d_active: int | None = None, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Every member's prompts for ``step`` in one computation: x (E, B, n, d), y (E, B, n).

    Member e's are those of ``sample_members([tasks[e]], [seeds[e]], ...)`` bit for bit.
    The tasks must share d (and n, unless ``n`` is given) and be ``SUPPORTED``.
    """
    first = tasks[0]
    d, n = first.d, first.n if n is None else n
    assert all(supports(t) and t.d == d for t in tasks), "counter sampling: unsupported tasks"
    E, B = len(tasks), batch
    z = normals(keys(seeds, step, STREAM_NORMAL, device), B * d + B * n * d + B * n, dtype).to(dtype)
    g_w = z[:, :B * d].reshape(E, B, d)
    x = z[:, B * d:B * d + B * n * d].reshape(E, B, n, d)
    eps = z[:, B * d + B * n * d:].reshape(E, B, n)
    w = _column([t.w_std for t in tasks], dtype, device) * g_w  # (E, B, d)
    if any(isinstance(t, SparseTask) for t in tasks):  # s = d keeps every coordinate
        u = uniforms(keys(seeds, step, STREAM_SUPPORT, device), B * d).view(E, B, d)
        rank = u.argsort(dim=-1, stable=True).argsort(dim=-1, stable=True)
        s = torch.tensor([t.s if isinstance(t, SparseTask) else d for t in tasks], device=device)
        w = w * (rank < s.view(E, 1, 1)).to(dtype)
    mean = torch.stack([torch.as_tensor(t.w_mean if isinstance(t, GaussianTask) else 0.0,
                                        dtype=dtype, device=device).expand(d) for t in tasks])
    w = w + mean[:, None, :]
    if any(t.cov != "identity" for t in tasks):  # x = g T, T the symmetric root of Sigma
        roots = torch.stack([t.covariance_sqrt for t in tasks]).to(device=device, dtype=dtype)
        x = torch.bmm(x.reshape(E, B * n, d), roots).view(E, B, n, d)
    if d_active is not None and d_active < d:
        x[..., d_active:] = 0.0
    y = torch.einsum("bnd,bd->bn", x.reshape(E * B, n, d), w.reshape(E * B, d)).view(E, B, n)
    y = y + _column([t.noise_std for t in tasks], dtype, device) * eps
    return x, y
