"""Counter-based sampling: the SplitMix64 bits against a pure-Python reference, the moments and
distribution of the uniforms and normals, independence of neighbouring keys, prompts with the
tasks' distributions, and members independent of the ensemble (drawn and trained)."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from iclreg.errors import UsageError
from iclreg.tasks import TASKS
from iclreg.tasks.counter import bits, keys, normals, sample_members, uniforms
from iclreg.train import load_config, train
from iclreg.train.config import resolve
from iclreg.train.loop import group_key
from iclreg.train.sweep import run_sweep

MASK = (1 << 64) - 1
N = 400_000


def splitmix64(state: int, count: int) -> list[int]:
    """Steele et al.'s SplitMix64 on Python integers (unsigned), the reference sequence."""
    out = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


def test_bits_are_splitmix64_of_the_key():
    key = torch.tensor([0, 123456789, -5], dtype=torch.int64)
    got = bits(key, 6)
    for row, k in zip(got.tolist(), key.tolist(), strict=True):
        assert [b & MASK for b in row] == splitmix64(k & MASK, 6)
    assert got[0, 0].item() & MASK == 0xE220A8397B1DCDAF  # SplitMix64's published first output


def test_uniforms_have_the_uniform_moments_and_cdf():
    u = uniforms(keys([3], 0, 1), N)[0]
    assert 0 <= u.min() and u.max() < 1
    se = 1 / math.sqrt(N)
    assert abs(u.mean().item() - 0.5) < 4 * se * math.sqrt(1 / 12)
    assert abs(u.var().item() - 1 / 12) < 4 * se * math.sqrt(1 / 180)  # Var of (u - 1/2)^2 = 1/180
    ks = (u.sort().values - torch.arange(1, N + 1, dtype=torch.float64) / N).abs().max().item()
    assert ks < 1.95 / math.sqrt(N)  # Kolmogorov-Smirnov at the 0.1% level


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_normals_have_the_normal_moments_and_cdf(dtype):
    z = normals(keys([11], 4, 1), N, dtype)[0].double()
    se = 1 / math.sqrt(N)
    assert abs(z.mean().item()) < 4 * se
    assert abs(z.var().item() - 1) < 4 * se * math.sqrt(2)
    assert abs(z.pow(4).mean().item() - 3) < 4 * se * math.sqrt(96)  # Var z^4 = 105 - 9
    cdf = 0.5 * (1 + torch.erf(z.sort().values / math.sqrt(2)))
    ks = (cdf - torch.arange(1, N + 1, dtype=torch.float64) / N).abs().max().item()
    assert ks < 1.95 / math.sqrt(N)
    assert (z.abs() > 4).float().mean().item() == pytest.approx(6.334e-5, rel=0.5)  # the tails too


def test_neighbouring_keys_and_positions_are_uncorrelated():
    bound = 4 / math.sqrt(N)
    pairs = [normals(keys([0, 1], 7, 1), N),  # neighbouring seeds
             torch.cat([normals(keys([5], s, 1), N) for s in (7, 8)]),  # neighbouring steps
             torch.cat([normals(keys([5], 7, s), N) for s in (1, 2)])]  # neighbouring streams
    for z in pairs:
        assert abs(torch.corrcoef(z)[0, 1].item()) < bound
    z = normals(keys([9], 0, 1), N + 1)[0]
    assert abs(torch.corrcoef(torch.stack([z[:-1], z[1:]]))[0, 1].item()) < bound  # a Box-Muller pair
    assert abs(torch.corrcoef(torch.stack([z[:-1:2] ** 2, z[1::2] ** 2]))[0, 1].item()) < bound * 1.5


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_elements_do_not_depend_on_the_tiling_or_simd_position(dtype):
    key = keys([1, 2, 3], 0, 1)
    z = normals(key, 1001, dtype)
    for tile in (1, 7, 300, 10**6):
        assert torch.equal(normals(key, 1001, dtype, tile=tile), z)
    assert torch.equal(normals(key[1:2], 601, dtype)[0], z[1, :601])
    x = torch.rand(20_000, dtype=dtype, generator=torch.Generator().manual_seed(0)) + 0.01
    for f in (torch.log, torch.log1p, torch.cos, torch.sin, torch.sqrt):  # vector body vs tails
        assert torch.equal(f(x), torch.cat([f(c.clone()) for c in x.split(3)]))


TASK_SPECS = ["gaussian:d=4,n=7,noise_std=0.3,w_mean=0.5,w_std=0.7", "sparse:d=4,n=7,s=2",
              "gaussian:d=4,n=7,cov=toeplitz,rho=0.6"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_member_of_a_draw_is_its_draw_alone(dtype):
    tasks = [TASKS.build(s) for s in [*TASK_SPECS, TASK_SPECS[0], TASK_SPECS[1]]]
    seeds = [0, 1, 2**63 - 1, 42, 1]
    x, y = sample_members(tasks, seeds, 9, 3, n=6, d_active=3, dtype=dtype)
    assert x.shape == (5, 9, 6, 4) and y.shape == (5, 9, 6) and x.dtype == y.dtype == dtype
    assert (x[..., 3:] == 0).all()
    for e in range(5):
        x1, y1 = sample_members([tasks[e]], [seeds[e]], 9, 3, n=6, d_active=3, dtype=dtype)
        assert torch.equal(x[e], x1[0]) and torch.equal(y[e], y1[0])
    assert torch.equal(y[1], y[4]) and not torch.equal(x[0], x[3])  # the (task, seed) decides
    assert not torch.equal(x[0], sample_members(tasks[:1], [0], 9, 4, n=6, dtype=dtype)[0][0])


def test_prompts_follow_the_tasks_distributions():
    B = 20_000
    gauss, sparse, toeplitz = (TASKS.build(s) for s in TASK_SPECS)
    x, y = sample_members([gauss, sparse, toeplitz], [1, 2, 3], B, 0, dtype=torch.float64)
    # w is recovered exactly from d noiseless labels (sparse) or by least squares (noisy)
    w = torch.linalg.lstsq(x[1, :, :4], y[1, :, :4]).solution  # (B, d)
    assert torch.allclose((w.abs() > 1e-9).sum(-1), torch.full((B,), 2))
    assert (w.abs() > 1e-9).double().mean(0).sub(0.5).abs().max() < 0.03  # supports uniform: s/d
    wg = torch.linalg.lstsq(x[0], y[0]).solution
    se = 1 / math.sqrt(B)
    assert (wg.mean(0) - 0.5).abs().max() < 5 * se  # w_mean, plus the noise's small share
    resid = y[0] - torch.einsum("bnd,bd->bn", x[0], wg)
    assert resid.pow(2).sum() / (B * (7 - 4)) == pytest.approx(0.09, rel=0.05)  # noise_std^2
    cov = torch.einsum("bni,bnj->ij", x[2], x[2]) / (B * 7)
    assert torch.allclose(cov, toeplitz.covariance, atol=0.03)
    eye = torch.eye(4, dtype=torch.float64)
    assert torch.allclose(torch.einsum("bni,bnj->ij", x[0], x[0]) / (B * 7), eye, atol=0.03)


TINY = {"task": "gaussian:d=3,n=12,noise_std=0.1", "model": "softmax_attention:heads=2"}


def test_the_option_is_checked_kept_apart_and_absent_by_default():
    with pytest.raises(UsageError, match="train.sampler=counter draws only the tasks gaussian, sparse"):
        resolve({"task": "local:d=3,n=5", "model": "softmax_attention", "train": {"sampler": "counter"}})
    stream = resolve(TINY)
    counter = resolve({**TINY, "train": {"sampler": "counter"}})
    assert "sampler" not in stream.to_dict()["train"]  # runs written before the option still match
    assert counter.to_dict()["train"]["sampler"] == "counter"
    assert group_key(stream) != group_key(counter)


def test_an_ensemble_member_trained_with_counter_is_bit_identical_to_it_alone(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        **TINY, "optimizer": {"name": "adam", "lr": 0.01}, "eval": {"samples": 64},
        "train": {"steps": 12, "batch": 16, "loss": "query", "sampler": "counter"},
        "run": {"dtype": "float64", "checkpoint_every": 6, "log_every": 3}}))
    out = run_sweep(config, [], ["train.seed=0,1,2"], tmp_path / "sweep")
    last = {}
    for seed in (0, 1, 2):
        alone = train(load_config(config, [f"train.seed={seed}"]), tmp_path / f"alone{seed}")
        a = load_file(str(sorted((alone / "checkpoints").glob("step_*"))[-1] / "model.safetensors"))
        member = out / f"train.seed={seed}"
        b = load_file(str(sorted((member / "checkpoints").glob("step_*"))[-1] / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        last[seed] = a
    assert not torch.equal(*(next(iter(last[s].values())) for s in (0, 1)))  # members differ
    stream = train(load_config(config, ["train.seed=0", "train.sampler=stream"]), tmp_path / "stream")
    s = load_file(str(sorted((stream / "checkpoints").glob("step_*"))[-1] / "model.safetensors"))
    assert not all(torch.equal(s[k], last[0][k]) for k in s)  # the counter draws other prompts
