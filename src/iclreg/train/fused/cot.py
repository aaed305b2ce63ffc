"""Hand-derived chain-of-thought loss gradients of the CoT transformer (``models/cot.py``).

The loss is teacher-forced on the prompt's GD path w_0..w_T: with C = sum_i [x_i, y_i]^T
[x_i, y_i] over the n pairs, qk = W_qk[thought, context] ((d+1) x (d+1)), ov = W_ov[context,
w] ((d+1) x d) and the thought map Q = qk C ov / n, the residual of thought t is
e_t = w_t + [w_t, 1] Q - w_{t+1} and the loss is mean_{b,t,i} e_t^2. With G = dL/dQ =
sum_t [w_t, 1]^T (2 e_t / (B T d)) and P_b = C_b ov (C is symmetric):

    dL/dqk = sum_b G_b P_b^T / n,     dL/dov = sum_b C_b qk^T G_b / n,

and every other entry of W_qk and W_ov has zero gradient (it multiplies a zero of the
tokens). The same function as ``ChainOfThought.stacked_chain_loss`` (float64 tests).

Speed: the per-prompt matrices are tiny (d x d), and a batched product of E B tiny matrices
costs its per-matrix overhead, not its arithmetic. So the sums over prompts are single
(d+1) x (B d) products per member (C_b ov, qk P, the two gradients), and the T sequential GD
steps of the path run with the prompt axis innermost (one multiply and one sum over d x d x
E B numbers per step, vectorised along the prompts) instead of T batched matrix-vector
products; only C, the residuals and G stay batched per prompt.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...models.cot import ChainOfThoughtConfig
from .base import FAMILIES, Gradients, Workspace, per_member

# members per chunk on the CPU: about this many prompt numbers (x and y) in a chunk, eight members
# at the paper's shape; at E = 64 and 256 chunks gave 1.2-1.35x one chunk's model-steps/s (one
# thread; a quarter to twice this size measured alike)
CHUNK_ELEMENTS = 340_000


def gd_path(C: Tensor, n: int, lr: float, steps: int, workspace: Workspace | None = None) -> Tensor:
    """The GD iterates w_0 = 0, w_{t+1} = w_t - lr (S w_t - g) with S = X^T X / n, g = X^T y / n
    read off the moments C (N, d+1, d+1) of N prompts: (N, steps + 1, d), in ``workspace``'s
    buffers when given (fresh pages cost as much as the arithmetic here)."""
    N, d1 = C.shape[0], C.shape[-1]
    d = d1 - 1
    ws = workspace or Workspace()
    A = ws.get("A", (d, d, N), C)  # I - lr S, prompts innermost (S symmetric: w A is A w)
    torch.mul(C[:, :d, :d].permute(1, 2, 0), -lr / n, out=A).diagonal(0, 0, 1).add_(1.0)
    b = torch.mul(C[:, d, :d].t(), lr / n, out=ws.get("b", (d, N), C))
    path = ws.get("path", (N, steps + 1, d), C)
    columns = path.permute(1, 2, 0)  # (steps + 1, d, N): each iterate written as it comes,
    columns[0] = 0  # cheaper than one transposing copy of the whole path at the end
    w, nxt = ws.get("w", (d, N), C).zero_(), ws.get("next", (d, N), C)
    product = ws.get("product", (d, d, N), C)
    for t in range(steps):
        torch.mul(A, w.unsqueeze(1), out=product)
        torch.sum(product, 0, out=nxt).add_(b)
        columns[t + 1].copy_(nxt)
        w, nxt = nxt, w
    return path


@FAMILIES.register(ChainOfThoughtConfig, losses=("chain",))
def chain_gradients(config: ChainOfThoughtConfig, params: dict[str, Tensor], x: Tensor,
                    y: Tensor, workspace: Workspace | None = None) -> Gradients:
    """Per-member chain losses (E,) and gradients; W_qk, W_ov (E, D, D), D = 2d + 2;
    x (E, B, n, d), y (E, B, n). On the CPU the members go through in chunks of about
    ``CHUNK_ELEMENTS`` prompt numbers (a member's numbers do not depend on its chunk)."""
    W_qk, W_ov = params["W_qk"], params["W_ov"]
    E, B, n, d = x.shape
    ws = workspace or Workspace()
    chunk = max(1, CHUNK_ELEMENTS // (B * n * (d + 1))) if x.device.type == "cpu" else E
    losses = torch.empty(E, dtype=x.dtype, device=x.device)
    grad_qk, grad_ov = torch.zeros_like(W_qk), torch.zeros_like(W_ov)
    for e in range(0, E, chunk):
        part = slice(e, e + chunk)
        losses[part], grad_qk[part, d + 1:, :d + 1], grad_ov[part, :d + 1, d + 1: 2 * d + 1] = _chunk(
            config, W_qk[part], W_ov[part], x[part], y[part], ws)
    return losses, {"W_qk": grad_qk, "W_ov": grad_ov}


def _chunk(config: ChainOfThoughtConfig, W_qk: Tensor, W_ov: Tensor, x: Tensor, y: Tensor,
           ws: Workspace) -> tuple[Tensor, Tensor, Tensor]:
    """Losses (E,) and the gradients' nonzero blocks dL/dqk (E, d+1, d+1), dL/dov (E, d+1, d)
    of a chunk of E members."""
    E, B, n, d = x.shape
    T, d1 = config.steps, d + 1
    z = torch.cat([x, y.unsqueeze(-1)], -1, out=ws.get("z", (E, B, n, d1), x))  # the tokens (x_i, y_i)
    C = torch.matmul(z.transpose(-1, -2), z, out=ws.get("C", (E, B, d1, d1), x))  # (E, B, d+1, d+1)
    path = gd_path(C.view(E * B, d1, d1), n, config.lr, T, ws)  # (E B, T + 1, d)
    qk = W_qk[:, d + 1:, :d1]  # (E, d+1, d+1)
    ov = W_ov[:, :d1, d + 1: 2 * d + 1]  # (E, d+1, d)
    P = torch.bmm(C.view(E, B * d1, d1), ov).view(E, B, d1, d).transpose(1, 2).reshape(E, d1, B * d)
    Q = torch.bmm(qk, P).div_(n).view(E, d1, B, d).transpose(1, 2).reshape(E * B, d1, d)
    w = path[:, :-1]
    e = torch.baddbmm(Q[:, d:], w, Q[:, :d], out=ws.get("e", (E * B, T, d), x))
    e.add_(w).sub_(path[:, 1:])  # (E B, T, d): the residuals
    losses = torch.square(e.view(E, -1), out=ws.get("squares", (E, B * T * d), x)).mean(1)
    e.mul_(2 / (B * T * d))
    G = ws.get("G", (E, d1, B, d), x)  # dL/dQ with the prompts in the middle: (E, i, b, k)
    wTe = torch.bmm(w.transpose(1, 2), e, out=ws.get("wTe", (E * B, d, d), x))
    G[:, :d] = wTe.view(E, B, d, d).transpose(1, 2)
    G[:, d] = e.sum(1).view(E, B, d)
    G = G.view(E, d1, B * d)
    g_qk = per_member(G, P.transpose(1, 2)).div_(n)
    qk_G = torch.bmm(qk.transpose(1, 2), G).view(E, d1, B, d).transpose(1, 2).reshape(E, B * d1, d)
    g_ov = per_member(C.view(E, B * d1, d1).transpose(1, 2), qk_G).div_(n)
    return losses, g_qk, g_ov
