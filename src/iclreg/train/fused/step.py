"""The fused training step: every member's loss, gradients and Adam update in a few batched ops.

All parameters of all E members live in one flat buffer (E, P); each member's
``nn.Parameter`` is a view of its row (``param.data = view``), so checkpoints, evaluation and
the members' own modules read the current values without a copy. Adam's moments live in two
more (E, P) buffers and its step count in one (E,), and the optimiser's per-parameter state
holds views of them, in the layout ``torch.optim.Adam`` saves: checkpoints of the fused and
of the autograd step are interchangeable. One step is:

    losses, grads = family(params (E, ...), x, y)      hand-derived gradients (fused/*.py)
    g <- g * min(1, clip / ||g_e||)                     per member, if optimizer.clip
    m <- beta1 m + (1 - beta1) g,  v <- beta2 v + (1 - beta2) g^2
    theta <- theta - lr_e / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)

(Adam, Kingma & Ba, arXiv 1412.6980, in torch's arrangement; AdamW decays theta by
lr_e * weight_decay first, Adam adds weight_decay * theta to g), or SGD's
b <- momentum b + g (b = g at the first step), theta <- theta - lr_e b (the state
``momentum_buffer`` where momentum > 0), the member learning rates lr_e read from the
optimiser's parameter groups, which the scheduler sets. It gives the same numbers as the
autograd step with torch's optimiser up to round-off (float64 tests).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...models import Ensemble
from ..config import ExperimentConfig
from .base import FAMILIES, Family, Workspace


def unsupported(config: ExperimentConfig, net: torch.nn.Module) -> str | None:
    """Why the fused step cannot train ``config`` (None: it can)."""
    from ...models import MODELS

    model = MODELS.build(config.model)
    family = FAMILIES.get(model)
    reasons = [
        (not isinstance(net, Ensemble), "the model has no ensemble form"),
        (family is None, f"model '{model.name}' has no hand-derived gradients (fused: "
                         f"{', '.join(FAMILIES.names())})"),
        (family is not None and config.train.loss not in family.losses,
         f"train.loss={config.train.loss} (fused: {', '.join(family.losses) if family else ''})"),
        (config.run.amp != "none", "run.amp"),
        (config.run.compile, "run.compile"),
        (config.run.cuda_graph, "run.cuda_graph"),
    ]
    return next((why for bad, why in reasons if bad), None)


class FusedStep:
    """One optimiser step of every member of ``net`` with hand-derived gradients and a flat Adam.

    Args:
        net: the ensemble; its members' parameters become views of the flat buffer.
        optimizer: the run's Adam/AdamW (its parameter groups give the members' learning rates;
            its state holds views of the moments, for checkpoints).
        config: the run's config (loss, optimiser settings).
    """

    def __init__(self, net: Ensemble, optimizer: torch.optim.Optimizer, config: ExperimentConfig) -> None:
        first = net.members[0]
        family = FAMILIES.get(first.config)
        assert family is not None
        self.family: Family = family
        self.net, self.optimizer = net, optimizer
        self.model_config = first.config
        opt = config.optimizer
        self.beta1, self.beta2 = opt.betas
        self.eps, self.weight_decay, self.clip = 1e-8, opt.weight_decay, opt.clip
        self.decoupled, self.sgd, self.momentum = opt.name == "adamw", opt.name == "sgd", opt.momentum
        self.shapes = {name: p.shape for name, p in first.named_parameters()}
        self.sizes = [math.prod(s) for s in self.shapes.values()]
        self.workspace = Workspace()  # the family's large intermediates, reused
        self.bind()

    def bind(self) -> None:
        """(Re)build the flat buffers from the members' parameters and the optimiser's state
        (empty state: zero moments, step 0), and point both at views of them. Call it after
        loading weights or optimiser state that replaced the views (``Trainer._restore``)."""
        members = self.net.members
        E, P = len(members), sum(self.sizes)
        first = next(members[0].parameters())
        self.theta = torch.empty(E, P, dtype=first.dtype, device=first.device)
        self.m, self.v = torch.zeros_like(self.theta), torch.zeros_like(self.theta)
        self.steps = torch.zeros(E, dtype=torch.float32, device=first.device)
        keys = ("momentum_buffer",) if self.sgd else ("exp_avg", "exp_avg_sq")
        self.started = all("momentum_buffer" in self.optimizer.state.get(p, {})
                           for p in self.net.parameters())
        for e, member in enumerate(members):
            params = [dict(member.named_parameters())[name] for name in self.shapes]
            state = self.optimizer.state.get(params[0], {})
            if "step" in state:
                self.steps[e] = state["step"]
            views = (self._views(buf[e]) for buf in (self.theta, self.m, self.v))
            for param, theta, m, v in zip(params, *views, strict=True):
                theta.copy_(param.detach())
                param.data = theta
                old = self.optimizer.state.get(param, {})
                for key, buf in zip(keys, (m, v), strict=False):
                    if key in old:
                        buf.copy_(old[key])
                if not self.sgd:
                    self.optimizer.state[param] = {"step": self.steps[e], "exp_avg": m, "exp_avg_sq": v}
                elif self.momentum and self.started:
                    self.optimizer.state[param] = {"momentum_buffer": m}

    def _views(self, row: Tensor) -> list[Tensor]:
        """A member's row (P,) as its parameters' shapes."""
        return [t.view(shape) for t, shape in zip(row.split(self.sizes), self.shapes.values(), strict=True)]

    def params(self) -> dict[str, Tensor]:
        """Every parameter stacked along the members: name -> (E, ...), views of the buffer."""
        E = self.theta.shape[0]
        parts = self.theta.split(self.sizes, dim=1)
        return {name: part.view(E, *shape)
                for (name, shape), part in zip(self.shapes.items(), parts, strict=True)}

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Loss, gradients and optimiser step of every member on (E, B, n, d), (E, B, n[, K]);
        losses (E,)."""
        with torch.no_grad():
            losses, grads = self.family.gradients(self.model_config, self.params(), x, y, self.workspace)
            g = torch.cat([grads[name].reshape(len(losses), -1) for name in self.shapes], 1)  # (E, P)
            self._sgd(g) if self.sgd else self._adam(g)
        self.optimizer._opt_called = True  # type: ignore[attr-defined]  # the scheduler checks it stepped
        return losses

    def _clip_and_rates(self, g: Tensor) -> Tensor:
        """Clip each member's gradient (E, P) in place (``optimizer.clip``, as torch's
        ``clip_grad_norm_``); return the members' learning rates (E,), float64."""
        if self.clip is not None:
            norms = g.norm(dim=1, keepdim=True)  # (E, 1)
            g.mul_((self.clip / (norms + 1e-6)).clamp_(max=1.0))
        lr = torch.tensor([group["lr"] for group in self.optimizer.param_groups], dtype=torch.float64)
        return lr.to(g.device)

    def _sgd(self, g: Tensor) -> None:
        """SGD with momentum and L2 weight decay (module docstring) on the flat gradient (E, P)."""
        lr = self._clip_and_rates(g).to(self.theta.dtype).unsqueeze(1)
        if self.weight_decay:
            g.add_(self.theta, alpha=self.weight_decay)
        if self.momentum:
            if self.started:
                g = self.m.mul_(self.momentum).add_(g)
            else:  # torch's first step: the buffer is the gradient
                g = self.m.copy_(g)
                self.started = True
                for member, row in zip(self.net.members, self.m, strict=True):
                    for param, m in zip(member.parameters(), self._views(row), strict=True):
                        self.optimizer.state[param] = {"momentum_buffer": m}
        self.theta.sub_(g * lr)

    def _adam(self, g: Tensor) -> None:
        """The update of the module docstring on the flat gradient (E, P), in place."""
        lr = self._clip_and_rates(g)
        self.steps += 1
        t = self.steps.double()
        if self.weight_decay and self.decoupled:
            self.theta.mul_((1 - lr * self.weight_decay).to(self.theta.dtype).unsqueeze(1))
        elif self.weight_decay:
            g.add_(self.theta, alpha=self.weight_decay)
        self.m.lerp_(g, 1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        step_size = (lr / (1 - self.beta1**t)).to(self.theta.dtype).unsqueeze(1)  # (E, 1)
        root = (1 - self.beta2**t).sqrt().to(self.theta.dtype).unsqueeze(1)
        denom = (self.v.sqrt() / root).add_(self.eps)
        self.theta.addcdiv_(self.m * step_size, denom, value=-1)
