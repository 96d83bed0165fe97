"""Safetensors checkpoints: round trips, and every way a load can fail leaves the model untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from tg import Tensor, checkpoint, nn


def small_model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))


def values(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict[str, np.ndarray]) -> None:
    now = values(model)
    assert now.keys() == before.keys()
    for k in now:
        np.testing.assert_array_equal(now[k], before[k], err_msg=k)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    Tensor.manual_seed(0)
    model = small_model()
    model(Tensor.randn(4, 1, 4, 4))  # running statistics and the batch count move
    path = checkpoint.save(model, tmp_path / "sub" / "model.safetensors", metadata={"epoch": 3})
    return path, values(model)


def test_round_trip_restores_every_tensor(saved: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, original = saved
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp files
    fresh = small_model()
    metadata = checkpoint.load(fresh, path)
    assert metadata["epoch"] == "3" and checkpoint.CHECKSUM_KEY in metadata
    assert_unchanged(fresh, original)
    assert fresh.state_dict()["1.num_batches_tracked"].dtype.name == "int32"
    arrays, _ = checkpoint.read(path)
    assert set(arrays) == set(original) and arrays["1.num_batches_tracked"].shape == ()


def test_files_from_other_writers_load_without_a_checksum(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    save_file({"weight": np.eye(2, dtype=np.float32), "bias": np.ones(2, dtype=np.float32)},
              str(tmp_path / "plain.safetensors"))
    checkpoint.load(model, tmp_path / "plain.safetensors")
    np.testing.assert_array_equal(model.weight.numpy(), np.eye(2))
    checkpoint.save({"x": np.arange(3)}, tmp_path / "dict.safetensors")  # a plain mapping saves too
    np.testing.assert_array_equal(checkpoint.read(tmp_path / "dict.safetensors")[0]["x"], [0, 1, 2])


def test_missing_extra_and_misshaped_tensors_are_listed(tmp_path: Path) -> None:
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4),
                          nn.Linear(4, 1))
    state = values(other)
    del state["1.running_var"]
    path = checkpoint.save(state, tmp_path / "other.safetensors")
    model = small_model()
    before = values(model)
    with pytest.raises(nn.StateDictError) as info:
        checkpoint.load(model, path)
    message = str(info.value)
    assert str(path) in message
    assert "missing (1): 1.running_var" in message
    assert "unexpected (2): 5.bias, 5.weight" in message  # in the file's order
    assert f"shape mismatch for 4.weight: the model has (3, 8), checkpoint {path} has (4, 8)" in message
    assert "shape mismatch for 4.bias: the model has (3,), checkpoint" in message
    assert_unchanged(model, before)


def test_truncated_file_is_an_error_naming_it(saved: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = saved
    data = path.read_bytes()
    model = small_model()
    before = values(model)
    for cut in (len(data) - 7, len(data) // 2, 20, 3):
        path.write_bytes(data[:cut])
        with pytest.raises(checkpoint.CheckpointError, match=f"cannot read checkpoint {path}: it is truncated"):
            checkpoint.load(model, path)
        assert_unchanged(model, before)


def test_corrupt_file_is_an_error_naming_it(saved: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = saved
    data = bytearray(path.read_bytes())
    model = small_model()
    before = values(model)
    data[-5] ^= 0xFF  # inside the tensor data: the header still parses, the checksum does not match
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint {path} is corrupt"):
        checkpoint.load(model, path)
    assert_unchanged(model, before)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(checkpoint.CheckpointError, match=str(path)):
        checkpoint.load(model, path)
    path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(checkpoint.CheckpointError, match=str(path)):
        checkpoint.load(model, path)
    assert_unchanged(model, before)
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        checkpoint.load(model, path.parent / "nowhere.safetensors")


def test_optimizer_state_saved_beside_the_model(tmp_path: Path) -> None:
    """A checkpoint with the optimizer resumes training exactly where it stopped."""
    from tg import optim

    def build() -> tuple[nn.Module, optim.Optimizer]:
        Tensor.manual_seed(4)
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        return model, optim.AdamW([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.05}],
                                  lr=0.1, betas=(0.8, 0.95))

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 3)).astype(np.float32), rng.integers(0, 2, 6).astype(np.int32)

    def train(model: nn.Module, opt: optim.Optimizer, n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            model(Tensor(x)).cross_entropy(Tensor(y)).backward()
            opt.step()

    model, opt = build()
    train(model, opt, 3)
    path = checkpoint.save(model, tmp_path / "run.safetensors", optimizer=opt)
    other, other_opt = build()
    with pytest.raises(checkpoint.CheckpointError, match="not of a SGD"):
        checkpoint.load(other, path, optimizer=optim.SGD(other.parameters(), lr=0.1))
    checkpoint.load(other, path, optimizer=other_opt)
    assert other_opt.param_groups[1]["lr"] == 0.05 and other_opt.param_groups[0]["betas"] == (0.8, 0.95)
    assert int(other_opt.state[0]["step"]) == 3
    train(model, opt, 2)
    train(other, other_opt, 2)
    for a, b in zip(model.parameters(), other.parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)
    checkpoint.load(build()[0], path)  # the model alone: the optimizer's tensors are not "unexpected"
    plain = checkpoint.save(model, tmp_path / "plain.safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="no optimizer state"):
        checkpoint.load(other, plain, optimizer=other_opt)
