"""tg.nn's PyTorch layers and Module API on the backend under test, against numpy references.

Containers and the Module API (names, buffers, apply, modes), activation, pooling, normalization and loss modules,
Embedding(padding_idx), Conv2d(padding="same"), MultiheadAttention (masks, layouts, weights) and nn.init's
fan and gain rules, and nn.utils.clip_grad_norm_.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

from tg import Tensor, nn
from tg.nn import functional as F
from tg.testing import assert_close, random_array, reference, tensor

# -- containers and the Module API ----------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self) -> None:
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 3)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(3, 2), "reg": nn.Linear(3, 1)})
        self.norm = nn.BatchNorm1d(3)
        self.drop = nn.Dropout(0.5)
        self.mask: Tensor
        self.register_buffer("mask", Tensor(np.ones(3, np.float32)))
        self.register_buffer("cache", Tensor(np.zeros(2, np.float32)), persistent=False)
        self.scale = nn.Parameter(Tensor(np.ones(1, np.float32)))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x).relu()
        return self.heads["cls"](self.drop(self.norm(x) * self.mask * self.scale))


def test_module_names_buffers_and_containers() -> None:
    block = Block()
    names = list(block.state_dict())
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "heads.cls.weight",
                     "heads.cls.bias", "heads.reg.weight", "heads.reg.bias", "norm.weight", "norm.bias",
                     "norm.running_mean", "norm.running_var", "norm.num_batches_tracked", "mask", "scale"]
    assert "cache" not in names  # persistent=False: not saved...
    assert [n for n, _ in block.named_buffers()] == ["norm.running_mean", "norm.running_var",
                                                     "norm.num_batches_tracked", "mask", "cache"]  # ...but a buffer
    params = dict(block.named_parameters())
    assert list(params) == [n for n in names if "running" not in n and "num_batches" not in n and n != "mask"]
    assert len(block.parameters()) == 11 and isinstance(block.scale, nn.Parameter)
    assert next(block.parameters()) is params["layers.0.weight"]  # PyTorch's idiom for "the model's device"
    assert next(block.named_parameters())[0] == "layers.0.weight"
    assert not isinstance(block.mask, nn.Parameter)
    assert [n for n, _ in block.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in block.named_children()] == ["layers", "heads", "norm", "drop"]
    assert [n for n, _ in block.named_modules()] == ["", "layers", "layers.0", "layers.1", "heads", "heads.cls",
                                                     "heads.reg", "norm", "drop"]
    assert [n for n, _ in block.named_modules(prefix="net")][:2] == ["net", "net.layers"]
    assert list(block.children())[0] is block.layers and len(block.layers) == 2 and "cls" in block.heads
    block.eval()
    assert not block.drop.training and not block.layers[0].training and not block.heads["reg"].training
    block.train()
    assert block.drop.training and block.norm.training


def test_module_list_and_dict_methods() -> None:
    stack = nn.ModuleList()
    stack.append(nn.Linear(2, 2)).extend([nn.ReLU(), nn.Linear(2, 1)])
    stack.insert(0, nn.Identity())
    assert len(stack) == 4 and isinstance(stack[0], nn.Identity) and len(stack[1:]) == 3
    assert list(nn.Sequential(*stack)(Tensor(np.ones((3, 2), np.float32))).shape) == [3, 1]
    with pytest.raises(TypeError, match="is not a Module"):
        stack.append(Tensor.relu)  # type: ignore[arg-type]
    heads = nn.ModuleDict([("a", nn.Linear(2, 2))])
    heads["b"] = nn.Linear(2, 3)
    assert list(heads.keys()) == ["a", "b"] and list(heads.state_dict())[-1] == "b.bias"
    with pytest.raises(KeyError, match="without '.'"):
        heads["x.y"] = nn.Identity()
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"] and seq.fc is seq[0]


def test_parameter_containers_submodules_and_non_strict_loading() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            self.scales = nn.ParameterList([Tensor(np.ones(2, np.float32)), nn.Parameter(Tensor.zeros(3))])
            self.named = nn.ParameterDict({"gain": Tensor(np.full(2, 2.0, np.float32))})
            self.body = nn.Sequential(nn.Linear(2, 2))

    net = Net()
    assert list(net.state_dict()) == ["scales.0", "scales.1", "named.gain", "body.0.weight", "body.0.bias"]
    assert len(net.parameters()) == 5 and all(isinstance(p, nn.Parameter) for p in net.scales)
    assert net.get_submodule("body.0") is net.body[0] and net.get_parameter("named.gain") is net.named["gain"]
    with pytest.raises(AttributeError, match="no submodule 'body.1'"):
        net.get_submodule("body.1")
    result = net.load_state_dict({"scales.0": np.full(2, 3.0, np.float32), "extra": np.zeros(1)}, strict=False)
    assert result.unexpected_keys == ["extra"] and "named.gain" in result.missing_keys
    assert net.scales[0].numpy().tolist() == [3.0, 3.0]
    missing, unexpected = net.load_state_dict(net.state_dict())
    assert missing == [] and unexpected == []


def test_apply_zero_grad_requires_grad_and_to() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen: list[str] = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "Sequential"]  # children first, as in PyTorch
    model.apply(lambda m: nn.init.constant_(m.weight, 0.5) if isinstance(m, nn.Linear) else None)
    assert model[0].weight.numpy().tolist() == [[0.5] * 3] * 4
    model(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert model.parameters() == [] and len(model.state_dict()) == 4
    model.requires_grad_(True)
    assert len(model.parameters()) == 4
    before = model[0].weight
    assert model.to(before.device) is model and model[0].weight is before  # the same device: nothing moves


def test_register_buffer_errors() -> None:
    m = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="must not require grad"):
        m.register_buffer("b", Tensor(np.ones(2, np.float32), requires_grad=True))
    with pytest.raises(KeyError, match="already has a parameter"):
        m.register_buffer("weight", Tensor(np.ones(2, np.float32)))
    with pytest.raises(TypeError, match="Tensor or None"):
        m.register_buffer("b", [1.0])  # type: ignore[arg-type]


# -- parameter-free layers ------------------------------------------------------------------------------------------

def _np_gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


ACTIVATIONS: list[tuple[Any, Any]] = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)), (nn.GELU(), _np_gelu), (nn.GELU("tanh"), reference.gelu),
    (nn.SiLU(), reference.silu), (nn.Tanh(), np.tanh), (nn.Sigmoid(), reference.sigmoid),
    (nn.Softmax(dim=1), lambda x: reference.softmax(x, 1)), (nn.LogSoftmax(dim=-1), reference.log_softmax),
    (nn.LeakyReLU(0.2), lambda x: reference.leaky_relu(x, 0.2)), (nn.Identity(3, k=4), lambda x: x),
    (nn.Flatten(), lambda x: x.reshape(2, -1)), (nn.Flatten(0, 1), lambda x: x.reshape(-1, 5)),
    (nn.Unflatten(1, (1, 3)), lambda x: x.reshape(2, 1, 3, 5)),
]


@pytest.mark.parametrize(("layer", "ref"), ACTIVATIONS, ids=[repr(a[0]) for a in ACTIVATIONS])
def test_activation_and_shape_modules(layer: nn.Module, ref: Any, rng: np.random.Generator) -> None:
    x = random_array((2, 3, 5), rng=rng, low=-3, high=3)
    assert_close(layer(tensor(x)), ref(x.astype(np.float64)), atol=2e-6)


def test_softmax_module_needs_dim() -> None:
    with pytest.raises(TypeError, match="needs dim="):
        nn.Softmax()(Tensor(np.ones((2, 2), np.float32)))


@pytest.mark.parametrize(("layer", "ref"), [
    (nn.MaxPool2d(2), lambda x: reference.max_pool2d(x, 2)),
    (nn.MaxPool2d(3, stride=2, padding=1), lambda x: reference.max_pool2d(x, 3, 2, 1)),
    (nn.AvgPool2d(2), lambda x: reference.avg_pool2d(x, 2)),
    (nn.AvgPool2d(3, stride=1, padding=1), lambda x: reference.avg_pool2d(x, 3, 1, 1)),
    (nn.AdaptiveAvgPool2d(1), lambda x: x.mean((-2, -1), keepdims=True)),
    (nn.AdaptiveAvgPool2d((3, 2)), lambda x: np.stack([np.stack(
        [x[..., (i * 6) // 3:-((-(i + 1) * 6) // 3), (j * 6) // 2:-((-(j + 1) * 6) // 2)].mean((-2, -1))
         for j in range(2)], -1) for i in range(3)], -2)),
    (nn.AdaptiveAvgPool2d((4, None)), lambda x: np.stack(
        [x[..., (i * 6) // 4:-((-(i + 1) * 6) // 4), :].mean(-2) for i in range(4)], -2)),
], ids=["max2", "max3s2p1", "avg2", "avg3s1p1", "adaptive1", "adaptive3x2", "adaptive4xNone"])
def test_pooling_modules(layer: nn.Module, ref: Any, rng: np.random.Generator) -> None:
    x = random_array((2, 3, 6, 6), rng=rng)
    assert_close(layer(tensor(x)), ref(x.astype(np.float64)))


# -- normalization --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)], ids=["NC", "NCL"])
def test_batchnorm1d_train_and_eval(shape: tuple[int, ...], rng: np.random.Generator) -> None:
    x = random_array(shape, rng=rng, low=-2, high=3)
    bn = nn.BatchNorm1d(3, momentum=0.2)
    x64 = x.astype(np.float64)
    dims = (0,) if len(shape) == 2 else (0, 2)
    mean, var = x64.mean(dims), x64.var(dims)
    expand = (1, 3) if len(shape) == 2 else (1, 3, 1)
    want = (x64 - mean.reshape(expand)) / np.sqrt(var.reshape(expand) + 1e-5)
    assert_close(bn(tensor(x)), want, atol=1e-5)
    n = x.size // 3
    assert bn.running_mean is not None and bn.running_var is not None
    assert_close(bn.running_mean, 0.2 * mean)
    assert_close(bn.running_var, 0.8 + 0.2 * var * n / (n - 1))
    bn.eval()
    want_eval = (x64 - (0.2 * mean).reshape(expand)) / np.sqrt((0.8 + 0.2 * var * n / (n - 1)).reshape(expand) + 1e-5)
    assert_close(bn(tensor(x)), want_eval, atol=1e-5)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): input must be \(N, 3\) or \(N, 3, L\)"):
        bn(Tensor(np.ones((2, 4), np.float32)))


def test_batchnorm_cumulative_average_under_jit(rng: np.random.Generator) -> None:
    """``momentum=None``: the running statistics are the plain average of every batch's, also when replayed."""
    import tg

    bn = nn.BatchNorm1d(2, momentum=None)
    batches = [random_array((4, 2), rng=rng, low=-2, high=2) for _ in range(6)]
    step = tg.jit(lambda x: bn(x))
    for b in batches:
        step(tensor(b))
    assert bn.running_mean is not None and bn.running_var is not None and bn.num_batches_tracked is not None
    assert bn.num_batches_tracked.item() == 6
    assert_close(bn.running_mean, np.mean([b.astype(np.float64).mean(0) for b in batches], axis=0))
    assert_close(bn.running_var, np.mean([b.astype(np.float64).var(0, ddof=1) for b in batches], axis=0))


def test_groupnorm_and_layernorm_without_bias(rng: np.random.Generator) -> None:
    x = random_array((2, 6, 3, 2), rng=rng)
    gn = nn.GroupNorm(3, 6)
    assert gn.weight is not None and gn.bias is not None
    nn.init.normal_(gn.weight)
    nn.init.normal_(gn.bias)
    g = x.astype(np.float64).reshape(2, 3, -1)
    want = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    want = want * gn.weight.numpy().reshape(1, 6, 1, 1) + gn.bias.numpy().reshape(1, 6, 1, 1)
    assert_close(gn(tensor(x)), want, atol=1e-5)
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(4, 6)
    ln = nn.LayerNorm(2, bias=False)
    assert ln.bias is None and list(ln.state_dict()) == ["weight"]
    assert_close(ln(tensor(x)), reference.layernorm(x.astype(np.float64)), atol=1e-5)


# -- losses ---------------------------------------------------------------------------------------------------------

def test_loss_modules(rng: np.random.Generator) -> None:
    logits = random_array((5, 4), rng=rng, low=-2, high=2)
    target = np.array([0, 3, 1, -100, 2], np.int32)
    weight = np.array([1.0, 2.0, 0.5, 1.5], np.float32)
    logp = reference.log_softmax(logits.astype(np.float64))
    keep = target != -100
    picked = -logp[np.arange(5), np.where(keep, target, 0)] * weight[np.where(keep, target, 0)] * keep
    loss = nn.CrossEntropyLoss(weight=Tensor(weight))
    assert list(loss.state_dict()) == ["weight"]  # a buffer, as in PyTorch
    assert_close(loss(tensor(logits), Tensor(target)), picked.sum() / (weight[target[keep]]).sum())
    smooth = nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.2)
    want = sum(0.8 * -logp[i, t] + 0.2 / 4 * -logp[i].sum() for i, t in enumerate(target) if t != -100)
    assert_close(smooth(tensor(logits), Tensor(target)), want)
    a, b = random_array((3, 4), rng=rng), random_array((3, 4), rng=rng)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert_close(nn.MSELoss()(tensor(a), tensor(b)), ((a64 - b64) ** 2).mean())
    assert_close(nn.L1Loss(reduction="none")(tensor(a), tensor(b)), np.abs(a64 - b64))
    labels = (rng.random((3, 4)) < 0.5).astype(np.float32)
    pos = np.array([1.0, 2.0, 3.0, 0.5], np.float32)
    sig = reference.sigmoid(a64)
    want_bce = -(pos * labels * np.log(sig) + (1 - labels) * np.log(1 - sig)).mean()
    assert_close(nn.BCEWithLogitsLoss(pos_weight=Tensor(pos))(tensor(a), tensor(labels)), want_bce)
    with pytest.raises(ValueError, match="reduction must be"):
        nn.MSELoss(reduction="avg")


# -- embedding, convolution, attention --------------------------------------------------------------------------

def test_embedding_padding_idx() -> None:
    emb = nn.Embedding(5, 3, padding_idx=-1)
    assert emb.padding_idx == 4
    assert emb.weight.numpy()[4].tolist() == [0.0, 0.0, 0.0] and np.abs(emb.weight.numpy()[:4]).sum() > 0
    ids = Tensor(np.array([[4, 1], [1, 0]], np.int32))
    out = emb(ids)
    assert out.shape == (2, 2, 3)
    (out * Tensor(np.arange(12, dtype=np.float32).reshape(2, 2, 3))).sum().backward()
    assert emb.weight.grad is not None
    grad = emb.weight.grad.numpy()
    assert grad[4].tolist() == [0.0, 0.0, 0.0]  # the padding row gets no gradient
    np.testing.assert_allclose(grad[1], np.arange(3, 6) + np.arange(6, 9))
    frozen = nn.Embedding.from_pretrained(Tensor(np.eye(3, dtype=np.float32)))
    assert frozen.parameters() == [] and frozen(Tensor(np.array([2], np.int32))).numpy().tolist() == [[0, 0, 1]]
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 3, padding_idx=5)


@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (4, 1), ((2, 5), 1), (3, 2), ((2, 3), (2, 1))],
                         ids=["3", "4", "2x5", "3d2", "2x3d2x1"])
def test_conv2d_padding_same(kernel: Any, dilation: Any, rng: np.random.Generator) -> None:
    conv = nn.Conv2d(3, 2, kernel, padding="same", dilation=dilation)
    x = random_array((2, 3, 7, 6), rng=rng)
    kh, kw = conv.kernel_size
    dh, dw = conv.dilation
    th, tw = dh * (kh - 1), dw * (kw - 1)  # PyTorch puts the odd zero after
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2)))
    assert conv.bias is not None
    want = reference.conv2d(xp, conv.weight.numpy().astype(np.float64), conv.bias.numpy(), dilation=dilation)
    out = conv(tensor(x))
    assert out.shape == (2, 2, 7, 6) and conv.padding == "same"
    assert_close(out, want, scale=4)
    assert nn.Conv2d(3, 2, 3, padding="valid")(tensor(x)).shape == (2, 2, 5, 4)
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv2d(3, 2, 3, padding="same", stride=2)


def _np_mha(mha: nn.MultiheadAttention, q: np.ndarray, k: np.ndarray, v: np.ndarray,
            add: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's MultiheadAttention on (N, L, E) inputs in float64; ``add``: (N, H, L, S) added to the scores."""
    e, h = mha.embed_dim, mha.num_heads
    assert mha.in_proj_weight is not None and mha.in_proj_bias is not None and mha.out_proj.bias is not None
    w, b = mha.in_proj_weight.numpy().astype(np.float64), mha.in_proj_bias.numpy().astype(np.float64)

    def split(x: np.ndarray, i: int) -> np.ndarray:
        y = x @ w[i * e:(i + 1) * e].T + b[i * e:(i + 1) * e]
        return y.reshape(y.shape[0], y.shape[1], h, e // h).transpose(0, 2, 1, 3)

    scores = split(q, 0) @ split(k, 1).transpose(0, 1, 3, 2) / math.sqrt(e // h)
    if add is not None:
        scores = scores + add
    weights = reference.softmax(scores, -1)
    out = (weights @ split(v, 2)).transpose(0, 2, 1, 3).reshape(q.shape[0], q.shape[1], e)
    out = out @ mha.out_proj.weight.numpy().T + mha.out_proj.bias.numpy()
    return out, weights


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_matches_numpy(batch_first: bool, rng: np.random.Generator) -> None:
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    assert mha.in_proj_weight is not None and mha.in_proj_weight.shape == (24, 8)
    assert list(mha.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    q, k = random_array((2, 4, 8), rng=rng), random_array((2, 5, 8), rng=rng)
    v = random_array((2, 5, 8), rng=rng)
    causal = np.triu(np.ones((4, 5), np.bool_), 1)  # True: may not attend
    padding = np.zeros((2, 5), np.bool_)
    padding[1, 3:] = True
    add = np.where(causal[None, None] | padding[:, None, None, :], -np.inf, 0.0)
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    want_out, want_w = _np_mha(mha, q64, k64, v64, add)

    def layout(a: np.ndarray) -> Tensor:
        return tensor(a if batch_first else a.transpose(1, 0, 2).copy())

    out, weights = mha(layout(q), layout(k), layout(v), key_padding_mask=Tensor(padding), attn_mask=Tensor(causal))
    assert weights is not None and weights.shape == (2, 4, 5)
    assert_close(out, want_out if batch_first else want_out.transpose(1, 0, 2), scale=4)
    assert_close(weights, want_w.mean(1))
    float_mask = np.where(causal, -np.inf, 0.0).astype(np.float32)
    out2, per_head = mha(layout(q), layout(k), layout(v), key_padding_mask=Tensor(padding),
                         attn_mask=Tensor(float_mask), average_attn_weights=False)
    assert per_head is not None and per_head.shape == (2, 2, 4, 5)
    assert_close(per_head, want_w)
    assert_close(out2, out.numpy().astype(np.float64), atol=1e-6)
    out3, none = mha(layout(q), layout(k), layout(v), need_weights=False)
    assert none is None
    unmasked = _np_mha(mha, q64, k64, v64, None)[0]
    assert_close(out3, unmasked if batch_first else unmasked.transpose(1, 0, 2), scale=4)
    out3.sum().backward()
    assert mha.in_proj_weight.grad is not None and mha.out_proj.weight.grad is not None


def test_multihead_attention_returns_weights_after_dropout(rng: np.random.Generator) -> None:
    """As PyTorch: in training, dropout zeroes attention weights and scales the rest by 1/(1-p), and the weights
    returned are those the output used."""
    mha = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = tensor(random_array((2, 6, 8), rng=rng))
    _, dropped = mha(x, x, x, average_attn_weights=False)
    mha.eval()
    _, plain = mha(x, x, x, average_attn_weights=False)
    assert dropped is not None and plain is not None
    d, p = dropped.numpy(), plain.numpy()
    kept = d != 0
    assert 0.2 < kept.mean() < 0.8 and (p > 0).all()
    np.testing.assert_allclose(d[kept], 2 * p[kept], rtol=1e-5)


def test_multihead_attention_unbatched_causal_and_errors(rng: np.random.Generator) -> None:
    mha = nn.MultiheadAttention(4, 1)
    x = random_array((3, 4), rng=rng)
    out, weights = mha(tensor(x), tensor(x), tensor(x), is_causal=True)
    add = np.where(np.triu(np.ones((3, 3), np.bool_), 1), -np.inf, 0.0)[None, None]
    x64 = x[None].astype(np.float64)
    want_out, want_w = _np_mha(mha, x64, x64, x64, add)
    assert out.shape == (3, 4) and weights is not None and weights.shape == (3, 3)
    assert_close(out, want_out[0], scale=4)
    assert_close(weights, want_w[0, 0])
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="attn_mask must be"):
        mha(tensor(x), tensor(x), tensor(x), attn_mask=Tensor(np.zeros((2, 2), np.bool_)))


# -- nn.init and nn.utils --------------------------------------------------------------------------------------------

def test_init_fan_and_gain_rules() -> None:
    assert nn.init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert nn.init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert nn.init.calculate_gain("conv2d") == nn.init.calculate_gain("sigmoid") == 1.0
    w = Tensor.zeros(64, 32, 3, 3, requires_grad=True)  # fan_in 288, fan_out 576
    cases = [
        (lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5)), "uniform", math.sqrt(2 / 6) * math.sqrt(3 / 288)),
        (lambda t: nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"), "uniform",
         math.sqrt(2) * math.sqrt(3 / 576)),
        (lambda t: nn.init.xavier_uniform_(t, gain=2.0), "uniform", 2.0 * math.sqrt(6 / (288 + 576))),
        (lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), "normal", math.sqrt(2) / math.sqrt(288)),
        (lambda t: nn.init.xavier_normal_(t), "normal", math.sqrt(2 / (288 + 576))),
        (lambda t: nn.init.normal_(t, mean=0.0, std=0.02), "normal", 0.02),
        (lambda t: nn.init.uniform_(t, -0.3, 0.3), "uniform", 0.3),
    ]
    for fill, kind, size in cases:
        assert fill(w) is w and w.requires_grad
        values = w.numpy().astype(np.float64)
        if kind == "uniform":  # 18,432 draws: the extremes come within 0.2% of the bound, the std is bound/sqrt(3)
            assert values.max() <= size and values.min() >= -size
            assert values.max() > 0.99 * size and values.min() < -0.99 * size
            assert values.std() == pytest.approx(size / math.sqrt(3), rel=0.03)
        else:
            assert values.std() == pytest.approx(size, rel=0.03) and abs(values.mean()) < 0.05 * size
    assert nn.init.constant_(w, 0.25).numpy().max() == 0.25 and nn.init.zeros_(w).numpy().max() == 0.0
    assert nn.init.ones_(Tensor.zeros(3)).numpy().tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(Tensor.zeros(5))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        nn.init.calculate_gain("swish")


@pytest.mark.parametrize(("max_norm", "norm_type"), [(1.0, 2.0), (100.0, 2.0), (0.5, math.inf), (2.0, 1.0)],
                         ids=["clip-l2", "no-clip", "clip-inf", "clip-l1"])
def test_clip_grad_norm(max_norm: float, norm_type: float, rng: np.random.Generator) -> None:
    grads = [random_array((3, 4), rng=rng, low=-2, high=2), random_array((5,), rng=rng, low=-2, high=2)]
    params = [Tensor(np.zeros(g.shape, np.float32), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        (p * Tensor(g)).sum().backward()
    flat = np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64)
    total = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    got = nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    assert got.shape == ()
    assert_close(got, total)
    coef = min(1.0, max_norm / (total + 1e-6))
    for p, g in zip(params, grads):
        assert p.grad is not None
        assert_close(p.grad, g.astype(np.float64) * coef)
    nn.utils.clip_grad_value_(params, 0.1)
    assert all(p.grad is not None and np.abs(p.grad.numpy()).max() <= 0.1 + 1e-7 for p in params)


def test_functional_and_module_agree(rng: np.random.Generator) -> None:
    x = random_array((2, 3, 4, 4), rng=rng)
    conv = nn.Conv2d(3, 4, 3, padding="same")
    assert_close(conv(tensor(x)), F.conv2d(tensor(x), conv.weight, conv.bias, padding="same").numpy(), atol=1e-5)
