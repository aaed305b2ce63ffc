"""Hook points: named identity modules that expose a model's internals.

Following TransformerLens, a model places a :class:`HookPoint` wherever an activation is worth
observing (the residual stream before and after each sub-layer, the attention pattern). A hook
point is named by its module path, e.g. ``blocks.3.hook_resid_post``, so names need no separate
table. Unused, a hook point is one identity call; :func:`hooks` attaches functions to named
points for the length of a ``with`` block, and :func:`caching` uses it to record activations.
A hook function may return a tensor, which then replaces the activation (an intervention).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from torch import Tensor, nn

from ..errors import UsageError

HookFn = Callable[[Tensor, str], "Tensor | None"]


class HookPoint(nn.Identity):
    """An identity module whose output can be observed or replaced by a forward hook."""

    @property
    def active(self) -> bool:
        """Whether a hook is attached: layers skip work (e.g. materialising a pattern) if not."""
        return bool(self._forward_hooks)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Every hook point of ``model``, by module path, in the order of the forward pass."""
    return {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}


def resolve(model: nn.Module, names: Iterable[str] | None) -> list[str]:
    """Check hook names against ``model``; ``None`` means all of them.

    Raises:
        UsageError: naming the unknown hook and listing the valid ones.
    """
    valid = list(hook_points(model))
    if names is None:
        return valid
    names = list(names)
    for name in names:
        if name not in valid:
            raise UsageError(f"unknown hook point '{name}'; valid names: {', '.join(valid)}")
    return names


@contextmanager
def hooks(model: nn.Module, fns: Mapping[str, HookFn]) -> Iterator[None]:
    """Attach ``fn(activation, name)`` to each named hook point while the block runs.

    The hooks are removed on exit, also when the block raises.
    """
    points = hook_points(model)
    handles = []
    try:
        for name in resolve(model, fns):
            fn = fns[name]
            handles.append(
                points[name].register_forward_hook(lambda _m, _inp, out, fn=fn, name=name: fn(out, name))
            )
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def caching(model: nn.Module, names: Iterable[str] | None = None) -> Iterator[dict[str, Tensor]]:
    """Record the activations at ``names`` (all hook points if ``None``) into a dict.

    The tensors are not detached: run under ``torch.no_grad()`` when no gradient is needed.
    """
    cache: dict[str, Tensor] = {}

    def store(out: Tensor, name: str) -> None:
        cache[name] = out

    with hooks(model, {name: store for name in resolve(model, names)}):
        yield cache
