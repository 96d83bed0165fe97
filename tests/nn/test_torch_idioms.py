"""A small PyTorch-style program written as a PyTorch user would (ModuleList of attention blocks, parameter groups
without weight decay on biases and norms, a scheduler, gradient clipping), trained eagerly and under tg.jit.

It runs on the numpy backend (``model.to("numpy")``, as a PyTorch user writes ``.to(device)``): its ~200 kernels
would take minutes to compile cold with a compiling backend; the kit covers each piece on every backend."""

from __future__ import annotations

import numpy as np
import tg
from tg import Tensor, nn, optim
from tg.optim.lr_scheduler import CosineAnnealingLR


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self, vocab: int, dim: int, length: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(Tensor.zeros(length, dim))
        self.blocks = nn.ModuleList([Block(dim, 2) for _ in range(2)])
        self.head = nn.Linear(dim, vocab)
        self.register_buffer("mask", Tensor(np.triu(np.ones((length, length), np.bool_), 1)))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, ids: Tensor) -> Tensor:
        x = self.tok(ids) + self.pos
        for block in self.blocks:
            x = block(x, self.mask)
        return self.head(x)


def _train(jit: bool) -> tuple[list[float], TinyLM]:
    tg.manual_seed(0)
    vocab, length = 7, 6
    model = TinyLM(vocab, 16, length).to("numpy")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-2)
    sched = CosineAnnealingLR(opt, T_max=12)
    loss_fn = nn.CrossEntropyLoss()
    seq = np.arange(64) % vocab  # a repeating sequence: the next token is predictable
    batches = [seq[i:i + length + 1] for i in range(0, 48, 4)]

    def step(x: Tensor, y: Tensor) -> Tensor:
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    fn = tg.jit(step) if jit else step
    losses = []
    for batch in batches:
        x = Tensor(np.stack([batch[:-1]] * 4).astype(np.int32), device="numpy")
        y = Tensor(np.stack([batch[1:]] * 4).astype(np.int32), device="numpy")
        losses.append(fn(x, y).item())
        sched.step()
    return losses, model


def test_tiny_language_model_trains_the_same_eagerly_and_under_jit() -> None:
    eager, m1 = _train(jit=False)
    jitted, m2 = _train(jit=True)
    assert min(eager[-3:]) < 0.25 * eager[0], eager
    np.testing.assert_allclose(jitted, eager, rtol=2e-4)
    for (name, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)
    assert "mask" in m1.state_dict() and all(n != "mask" for n, _ in m1.named_parameters())
    assert all(p.device == "numpy" for p in m1.state_dict().values())
