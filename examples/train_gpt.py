"""Train a small character-level GPT with tg on text that ships with Python, then generate from it.

The text is Python's own documentation of its keywords, statements and operators (``pydoc_data.topics``, the
text ``help("for")`` shows; about 460,000 characters): nothing is downloaded.  The model is a decoder-only
transformer (token and position embeddings, pre-norm blocks of causal self-attention and an MLP), written the
way a PyTorch user would write it.  The training step runs under ``tg.jit``; generation feeds the model a fixed
window of the last ``--block-size`` characters, so every step reuses the same kernels.

    python examples/train_gpt.py                       # defaults: 2 layers, 64 wide, 300 steps
    TG_BACKEND=clang python examples/train_gpt.py --steps 1000 --sample-length 400
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import numpy as np
import tg
import tg.nn.functional as F
from tg import Tensor, nn, optim
from tqdm import tqdm


def load_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


class CharTokenizer:
    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index[c] for c in text], dtype=np.int32)

    def decode(self, ids: np.ndarray) -> str:
        return "".join(self.chars[int(i)] for i in ids)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.reshape(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln2 = nn.LayerNorm(n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.out = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_embd: int, n_head: int, n_layer: int):
        self.block_size = block_size
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(Tensor.arange(t))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def batches(data: np.ndarray, block_size: int, batch_size: int, rng: np.random.Generator):
    """Endless random batches of (input, target) windows: the target is the input shifted by one character."""
    while True:
        starts = rng.integers(0, len(data) - block_size - 1, batch_size)
        x = np.stack([data[s:s + block_size] for s in starts])
        y = np.stack([data[s + 1:s + block_size + 1] for s in starts])
        yield x, y


def make_train_step(model: GPT, opt: optim.Optimizer) -> Callable[[Tensor, Tensor], Tensor]:
    """One training step on a batch of (input, target) windows: the mean next-character cross entropy, its
    gradients and an optimizer step; returns the loss (``main`` runs it under ``tg.jit``)."""
    def train_step(x: Tensor, y: Tensor) -> Tensor:
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return train_step


def evaluate(model: GPT, data: np.ndarray, block_size: int, batch_size: int, n_batches: int) -> float:
    """The mean loss over ``n_batches`` fixed windows of ``data``."""
    rng = np.random.default_rng(1234)
    it = batches(data, block_size, batch_size, rng)
    total = 0.0
    model.eval()
    with tg.no_grad():
        for _ in range(n_batches):
            x, y = next(it)
            logits = model(Tensor(x))
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Tensor(y.reshape(-1))).item()
    model.train()
    return total / n_batches


def generate(model: GPT, tok: CharTokenizer, prompt: str, length: int, temperature: float, seed: int) -> str:
    """``length`` characters after ``prompt``, sampled one at a time from the model's next-character distribution.

    The model always sees a full window of ``block_size`` characters (the prompt is padded on the left with
    spaces), so every step runs the same kernels."""
    rng = np.random.default_rng(seed)
    block = model.block_size
    ids = list(tok.encode(" " * block + prompt)[-block:])
    model.eval()
    next_logits = tg.jit(lambda window: model(window)[0, -1])
    out = []
    with tg.no_grad():
        for _ in range(length):
            logits = next_logits(Tensor(np.array([ids[-block:]], dtype=np.int32))).numpy().astype(np.float64)
            p = np.exp((logits - logits.max()) / temperature)
            nxt = int(rng.choice(len(p), p=p / p.sum()))
            ids.append(nxt)
            out.append(nxt)
    model.train()
    return prompt + tok.decode(np.array(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per step (default 32)")
    parser.add_argument("--block-size", type=int, default=64, help="characters the model sees (default 64)")
    parser.add_argument("--n-embd", type=int, default=64, help="width of the model (default 64)")
    parser.add_argument("--n-head", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--n-layer", type=int, default=2, help="transformer blocks (default 2)")
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW's learning rate (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-length", type=int, default=200, help="characters to generate (default 200)")
    parser.add_argument("--prompt", default="The for statement", help="text the sample starts from")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run for slow backends and CI: 30 steps of a 1-layer model on 32 characters")
    parser.add_argument("--require-loss", type=float, metavar="LOSS",
                        help="exit non-zero unless the final validation loss is below LOSS (for CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.sample_length, args.n_layer, args.block_size, args.batch_size = 30, 40, 1, 32, 16

    text = load_text()
    tok = CharTokenizer(text)
    data = tok.encode(text)
    split = int(len(data) * 0.9)
    train, val = data[:split], data[split:]
    tg.manual_seed(args.seed)
    model = GPT(tok.vocab_size, args.block_size, args.n_embd, args.n_head, args.n_layer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"tg backend {Tensor([0.0]).device}: {len(text):,} characters, vocabulary {tok.vocab_size}, "
          f"{n_params:,} parameters")
    opt = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)

    train_step = tg.jit(make_train_step(model, opt))
    it = batches(train, args.block_size, args.batch_size, np.random.default_rng(args.seed))
    curve: list[tuple[int, float]] = []
    start = time.perf_counter()
    with tqdm(total=args.steps, desc="train", unit="step", file=sys.stdout, mininterval=0.5) as bar:
        smoothed = math.log(tok.vocab_size)
        for step in range(1, args.steps + 1):
            x, y = next(it)
            loss = train_step(Tensor(x), Tensor(y)).item()
            smoothed = 0.9 * smoothed + 0.1 * loss if step > 1 else loss
            bar.update(1)
            bar.set_postfix(loss=f"{smoothed:.3f}")
            if step % max(1, args.steps // 10) == 0 or step == args.steps:
                curve.append((step, smoothed))
    seconds = time.perf_counter() - start
    val_loss = evaluate(model, val, args.block_size, args.batch_size, 8)
    print(f"trained {args.steps} steps in {seconds:.1f} s ({1e3 * seconds / args.steps:.0f} ms/step); "
          f"loss curve (smoothed): " + ", ".join(f"{s}: {v:.2f}" for s, v in curve))
    print(f"validation loss {val_loss:.3f} (a uniform guess: {math.log(tok.vocab_size):.3f})")
    print("sample:\n" + generate(model, tok, args.prompt, args.sample_length, 0.8, args.seed))
    if args.require_loss is not None and not val_loss < args.require_loss:
        print(f"validation loss {val_loss:.3f} is not below {args.require_loss}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
