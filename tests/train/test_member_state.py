"""Per-member optimiser and scheduler state (``member_state.py``): a member's part is the state
it would have trained alone, and joining the parts gives back the shared state."""

from __future__ import annotations

import torch

from iclreg.train.member_state import join_lists, join_states, member_lists, member_state


def trained(models, lrs):
    """Adam over one parameter group per model after two steps on fixed gradients; a LambdaLR."""
    optimizer = torch.optim.Adam([{"params": list(m.parameters()), "lr": lr}
                                  for m, lr in zip(models, lrs, strict=True)])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 / (1 + s))
    for _ in range(2):
        for m in models:
            for p in m.parameters():
                p.grad = torch.full_like(p, 0.5) + p.detach()
        optimizer.step()
        scheduler.step()
    return optimizer, scheduler


def models():
    torch.manual_seed(0)
    return [torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)]


def test_a_member_s_part_is_its_state_alone():
    pair = models()
    optimizer, scheduler = trained(pair, [0.1, 0.2])
    alone, alone_scheduler = trained([models()[1]], [0.2])
    part = member_state(optimizer.state_dict(), 1)
    expected = alone.state_dict()
    assert part["param_groups"] == expected["param_groups"]
    assert part["state"].keys() == expected["state"].keys() == {0, 1}
    for i, st in expected["state"].items():
        for key, value in st.items():
            torch.testing.assert_close(part["state"][i][key], value)
    lists = member_lists(scheduler.state_dict(), 1, 2)
    assert lists["base_lrs"] == [0.2] and lists["_last_lr"] == alone_scheduler.state_dict()["_last_lr"]


def test_joining_the_parts_gives_back_the_shared_state():
    optimizer, scheduler = trained(models(), [0.1, 0.2])
    state, sched = optimizer.state_dict(), scheduler.state_dict()
    joined = join_states([member_state(state, e) for e in range(2)])
    assert joined["param_groups"] == state["param_groups"]
    assert joined["state"].keys() == state["state"].keys() == {0, 1, 2, 3}
    for i in state["state"]:
        for key, value in state["state"][i].items():
            # copies (a member's part is saved alone), equal to the shared state
            assert joined["state"][i][key] is not value and torch.equal(joined["state"][i][key], value)
    assert join_lists([member_lists(sched, e, 2) for e in range(2)]) == sched
