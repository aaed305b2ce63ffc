"""The fused step: hand-derived gradients against autograd, the flat Adam against torch's, the
trainer's numbers against the autograd engine's, resume, thread counts and the sampler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iclreg.errors import UsageError
from iclreg.models import MODELS
from iclreg.tasks import TASKS
from iclreg.train import resolve
from iclreg.train.fused import FAMILIES
from iclreg.train.fused.step import FusedStep
from iclreg.train.loop import Trainer
from iclreg.train.sampler import Prefetcher, StreamSampler

F64 = torch.float64
# (model SPEC, loss, task SPEC): every registered family and the variants its gradients branch on
CASES = [
    ("softmax_attention:d=3,heads=2", "query", "gaussian:d=3,n=9,noise_std=0.3"),
    ("softmax_attention:d=3,heads=1", "query", "gaussian:d=3,n=9,noise_std=0.3"),
    ("softmax_attention:d=3,heads=3,activation=linear", "query", "gaussian:d=3,n=9,noise_std=0.3"),
    ("softmax_attention:d=3,heads=2,activation=linear,linear_scale=20", "query", "gaussian:d=3,n=9"),
    ("softmax_attention:d=4,heads=2,labels=2", "query", "multitask:d=4,n=9,subsets=[[0,1],[2,3]]"),
    ("reduced_attention:d=3", "query", "gaussian:d=3,n=9,noise_std=0.3"),
    ("reduced_attention:d=3,activation=linear", "query", "gaussian:d=3,n=9,noise_std=0.3"),
    ("cot:d=3,steps=4,lr=0.2", "chain", "gaussian:d=3,n=9,noise_std=0.3"),
]


def stacked(spec: str, E: int) -> tuple[object, dict[str, torch.Tensor]]:
    config = MODELS.build(spec)
    models = [config.build(torch.Generator().manual_seed(100 + e)).double() for e in range(E)]
    names = [name for name, _ in models[0].named_parameters()]
    return config, {k: torch.stack([dict(m.named_parameters())[k].detach() for m in models]) for k in names}


def test_every_family_has_a_case():
    assert {MODELS.build(spec).name for spec, _, _ in CASES} == set(FAMILIES.names())


@pytest.mark.parametrize("spec,loss,task", CASES)
def test_hand_derived_gradients_equal_autograd(spec, loss, task, seed):
    """The gradients of the family against autograd through the model's own stacked forward
    pass (the autograd engine's loss), float64: equal to round-off."""
    config, params = stacked(spec, E=3)
    t = TASKS.build(task)
    batches = [t.sample(5, seed, e, dtype=F64) for e in range(3)]
    x, y = torch.stack([b.x for b in batches]), torch.stack([b.y for b in batches])
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    cls = type(config.build())
    if loss == "chain":
        ref = cls.stacked_chain_loss(config, leaves, x, y)
    else:
        pred = cls.stacked_forward(config, leaves, x, y, last_only=True)
        ref = (pred - y[:, :, -1:]).square().flatten(1).mean(1)
    ref.sum().backward()
    losses, grads = FAMILIES.get(config).gradients(config, params, x, y)
    torch.testing.assert_close(losses, ref.detach(), rtol=1e-12, atol=1e-14)
    assert set(grads) == set(params)
    for name, g in grads.items():
        assert g.shape == params[name].shape
        torch.testing.assert_close(g, leaves[name].grad, rtol=1e-10, atol=1e-14)
    # negative control: the gradient of another member's prompts is not this one's
    other, _ = FAMILIES.get(config).gradients(config, params, x.flip(0), y.flip(0))
    assert not torch.allclose(other, losses)


# paper shapes on which batched products grouped members (before ``per_member``): He et al.'s
# H = 1 and the test-time CoT model
PAPER_SHAPES = [("softmax_attention:d=5,heads=1", "query", "gaussian:d=5,n=41"),
                ("cot:d=10,steps=20,lr=0.5", "chain", "gaussian:d=10,n=20")]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("spec,loss,task", CASES + PAPER_SHAPES)
def test_a_members_gradients_do_not_depend_on_the_ensemble(spec, loss, task, dtype):
    """A member's loss and gradients, bit for bit, whatever members share its ensemble: five,
    the last four, the first three, or it alone (so a run resumed in another grouping, or
    trained alone, trains as it did in its sweep)."""
    config, params = stacked(spec, E=5)
    params = {k: v.to(dtype) for k, v in params.items()}
    t = TASKS.build(task)
    batches = [t.sample(16, 0, e, dtype=dtype) for e in range(5)]
    x, y = torch.stack([b.x for b in batches]), torch.stack([b.y for b in batches])
    gradients = FAMILIES.get(config).gradients
    losses, grads = gradients(config, params, x, y)
    for part in (slice(1, 5), slice(0, 3), slice(2, 3)):
        some, theirs = gradients(config, {k: v[part].contiguous() for k, v in params.items()},
                                 x[part].contiguous(), y[part].contiguous())
        assert torch.equal(some, losses[part]), part
        for name, g in theirs.items():
            assert torch.equal(g, grads[name][part]), (name, part)
    # negative control: the same prompts summed in another order (flipped along the batch)
    # change the bits, so the equalities above do detect a changed order of summation
    _, moved = gradients(config, params, x.flip(1), y.flip(1))
    assert any(not torch.equal(moved[k], grads[k]) for k in grads)


_COUNT = iter(range(10**6))


def trainer(tmp: Path, engine: str, seeds=(0, 1, 2), dtype="float64", steps=20, **changes) -> Trainer:
    """A trainer of tiny He et al. models, one member per seed, in fresh directories under tmp."""
    base = {"task": "gaussian:d=3,n=9,noise_std=0.3", "model": "softmax_attention:heads=2",
            "optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "cosine", "warmup": 3},
            "train": {"steps": steps, "batch": 16, "loss": "query"},
            "run": {"dtype": dtype, "engine": engine, "checkpoint_every": 10, "log_every": 5,
                    "figures": False}}
    for section, values in changes.items():
        base[section] = {**base[section], **values} if isinstance(values, dict) else values
    configs = [resolve({**base, "train": {**base["train"], "seed": s}}) for s in seeds]
    run = next(_COUNT)
    dirs = [tmp / f"{engine}{run}-{s}" for s in seeds]
    for d in dirs:
        d.mkdir(parents=True)
    return Trainer(configs, dirs, resume=False)


def train(tr: Trainer, steps: int, start: int = 0) -> list[dict[str, torch.Tensor]]:
    with tr:
        for step in range(start, steps):
            tr.train_step(step)
        return [{k: v.detach().clone() for k, v in m.model.state_dict().items()} for m in tr.members]


@pytest.mark.parametrize("optimizer", [
    {"name": "adam"}, {"name": "adam", "weight_decay": 0.05}, {"name": "adamw", "weight_decay": 0.1},
    {"name": "adam", "clip": 0.05}, {"name": "sgd"},
    {"name": "sgd", "momentum": 0.9, "weight_decay": 0.01, "clip": 0.05}])
def test_flat_update_equals_torch_optimiser_on_the_same_gradients(tmp_path, optimizer):
    """Given the autograd gradients, one flat Adam or SGD step per member equals torch's
    optimiser (and clip_grad_norm_) to round-off, with each member's own learning rate."""
    tr = trainer(tmp_path, "auto", optimizer=optimizer)
    assert isinstance(tr.update, FusedStep)
    ref = trainer(tmp_path, "autograd", optimizer=optimizer)
    with tr, ref:
        for group, lr in zip(tr.optimizer.param_groups, (0.01, 0.02, 0.005), strict=True):
            group["lr"] = lr
        for group, lr in zip(ref.optimizer.param_groups, (0.01, 0.02, 0.005), strict=True):
            group["lr"] = lr
        for step in range(4):
            x, y = tr.sample(step)
            ref.optimizer.zero_grad()
            ref.update.losses(x.clone(), y.clone()).sum().backward()  # autograd
            grads = [torch.stack([dict(m.model.named_parameters())[n].grad for m in ref.members])
                     for n in tr.update.shapes]  # before clipping
            flat = torch.cat([g.reshape(3, -1) for g in grads], 1)
            tr.update._sgd(flat) if tr.update.sgd else tr.update._adam(flat)
            for m in ref.members if ref.update.clip else []:
                torch.nn.utils.clip_grad_norm_(m.model.parameters(), ref.update.clip)
            ref.optimizer.step()  # torch's Adam
        for a, b in zip(tr.members, ref.members, strict=True):
            for (name, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
                torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-15, msg=name)


def test_fused_training_follows_the_autograd_engine(tmp_path):
    """20 float64 steps of three members: the fused and the autograd engine end at the same
    weights up to round-off grown by Adam (its update divides by sqrt(v) + 1e-8, so an entry
    whose gradient is near 1e-8 turns a round-off of 1e-17 into lr * 1e-9): within 1e-7."""
    fused = train(trainer(tmp_path, "auto"), 20)
    plain = train(trainer(tmp_path, "autograd"), 20)
    for a, b in zip(fused, plain, strict=True):
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-7)
    # negative control: another learning rate moves the weights far beyond that bound
    other = train(trainer(tmp_path, "auto", optimizer={"lr": 0.011}), 20)
    assert max((other[0][k] - fused[0][k]).abs().max().item() for k in fused[0]) > 1e-4


def test_member_of_a_fused_ensemble_is_bit_identical_to_training_alone(tmp_path):
    together = train(trainer(tmp_path, "auto", seeds=(0, 1, 2), dtype="float32"), 15)
    alone = train(trainer(tmp_path, "auto", seeds=(1,), dtype="float32"), 15)
    for name in alone[0]:
        assert torch.equal(together[1][name], alone[0][name]), name


def test_fused_numbers_do_not_depend_on_the_thread_count(tmp_path):
    """Two torch threads: the step computes on one, prompts are drawn ahead on the other; the
    weights are those of one thread, bit for bit, and the thread count is restored after."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        tr = trainer(tmp_path, "auto", dtype="float32")
        assert isinstance(tr._draw, Prefetcher) and torch.get_num_threads() == 1
        two = train(tr, 15)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        one = train(trainer(tmp_path, "auto", dtype="float32"), 15)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        for name in a:
            assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("optimizer", [{"name": "adam"}, {"name": "sgd", "momentum": 0.9}])
def test_fused_resume_is_bit_identical(tmp_path, optimizer):
    """Trained 20 steps straight, or 10, checkpointed, and resumed by a new trainer: the same
    weights and optimiser state bit for bit."""
    straight = train(trainer(tmp_path, "auto", dtype="float32", steps=20, optimizer=optimizer), 20)
    first = trainer(tmp_path, "auto", dtype="float32", steps=20, optimizer=optimizer)
    with first:
        for step in range(10):
            first.train_step(step)
            first.step = step + 1
        first._save()
    configs = [m.config for m in first.members]
    resumed = Trainer(configs, [m.run_dir for m in first.members], resume=True)
    assert resumed.step == 10 and isinstance(resumed.update, FusedStep)
    state = resumed.optimizer.state_dict()["state"]
    assert len(state) == 12 and all(float(s.get("step", 10)) == 10 for s in state.values())
    after = train(resumed, 20, start=10)
    for a, b in zip(straight, after, strict=True):
        for name in a:
            assert torch.equal(a[name], b[name]), name


def test_engine_choice_and_refusal(tmp_path):
    assert isinstance(trainer(tmp_path, "auto").update, FusedStep)
    assert not isinstance(trainer(tmp_path, "autograd").update, FusedStep)
    assert not isinstance(trainer(tmp_path, "auto", train={"loss": "all"}).update, FusedStep)
    with pytest.raises(UsageError, match="run.engine=fused does not apply here: train.loss=all"):
        trainer(tmp_path, "fused", train={"loss": "all"})


def test_prefetched_prompts_are_the_drawn_ones_in_any_order():
    from iclreg.train.curriculum import CurriculumConfig

    tasks = [TASKS.build("gaussian:d=3,n=6,noise_std=0.1")] * 2
    sampler = StreamSampler(tasks, [4, 5], 7, CurriculumConfig(), torch.device("cpu"), torch.float32)
    plain = StreamSampler(tasks, [4, 5], 7, CurriculumConfig(), torch.device("cpu"), torch.float32)
    prefetch = Prefetcher(sampler)
    try:
        for step in (0, 1, 2, 5, 6, 3, 3):
            x, y = (t.clone() for t in prefetch(step))
            px, py = plain.draw(step)
            assert torch.equal(x, px) and torch.equal(y, py)
            one = tasks[0].sample(7, 5, step)  # member 1's own stream
            assert torch.equal(x[1], one.x) and torch.equal(y[1], one.y)
    finally:
        prefetch.close()


@pytest.mark.parametrize("family,spec,task,member", [
    ("softmax_attention", "softmax_attention:d=5,heads=2", "gaussian:d=5,n=41",
     32 * 2 * (1 + 1) * 40),  # elements of one member's (B, rows, m) intermediate
    ("cot", "cot:d=10,steps=20,lr=0.3", "gaussian:d=10,n=15", 32 * 15 * 11),  # its prompt numbers
])
def test_chunked_members_equal_one_chunk_bit_for_bit(monkeypatch, family, spec, task, member):
    """He et al.'s and the CoT model's gradients go through the members in cache-sized chunks:
    chunks of 2 (5 members: 2, 2, 1) give every member's numbers of one chunk, bit for bit."""
    from iclreg.train import fused

    module = getattr(fused, family)
    config, params = stacked(spec, E=5)
    params = {k: v.float() for k, v in params.items()}
    t = TASKS.build(task)
    batches = [t.sample(32, 0, e) for e in range(5)]
    x, y = torch.stack([b.x for b in batches]), torch.stack([b.y for b in batches])
    gradients = FAMILIES.get(config).gradients
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 100 * member)
    losses, grads = gradients(config, params, x, y)
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 2 * member)
    chunked, theirs = gradients(config, params, x, y)
    assert torch.equal(chunked, losses)
    assert all(torch.equal(theirs[k], grads[k]) for k in grads)
    # negative control: chunks fed each other's prompts (members rolled) change the numbers
    rolled, _ = gradients(config, params, x.roll(1, 0), y.roll(1, 0))
    assert not torch.equal(rolled, losses)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_softmax_scores_beyond_the_unshifted_range_are_shifted(monkeypatch, dtype):
    """Scores whose 2^s overflow the dtype's middle range are recomputed with the row's max
    subtracted, so the gradients still equal autograd's; without the check (the unshifted
    exponent kept) they are not finite."""
    from iclreg.train.fused import softmax_attention

    config, params = stacked("softmax_attention:d=3,heads=2", E=2)
    big = 600.0 if dtype == F64 else 60.0  # scores of several hundred (float64) or tens
    params = {k: (v * big if k in ("Q", "K") else v).to(dtype) for k, v in params.items()}
    t = TASKS.build("gaussian:d=3,n=9,noise_std=0.3")
    batches = [t.sample(8, 0, e, dtype=dtype) for e in range(2)]
    x, y = torch.stack([b.x for b in batches]), torch.stack([b.y for b in batches])
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    pred = type(config.build()).stacked_forward(config, leaves, x, y, last_only=True)
    (pred - y[:, :, -1:]).square().flatten(1).mean(1).sum().backward()
    losses, grads = softmax_attention.query_gradients(config, params, x, y)
    tol = {"rtol": 1e-9, "atol": 1e-9} if dtype == F64 else {"rtol": 1e-3, "atol": 1e-3}
    for name, g in grads.items():
        torch.testing.assert_close(g, leaves[name].grad, **tol)
    monkeypatch.setattr(softmax_attention, "_in_range", lambda sums: True)
    _, unshifted = softmax_attention.query_gradients(config, params, x, y)
    assert not all(torch.isfinite(g).all() for g in unshifted.values())
