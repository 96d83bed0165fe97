"""Post-backward hooks (tg.frontend.autograd): run once at the end of each backward, after every .grad is set."""

from __future__ import annotations

import numpy as np
from tg import Tensor
from tg.frontend.autograd import register_post_backward_hook


def test_a_hook_runs_after_each_backward_until_removed() -> None:
    w = Tensor([1.0, 2.0], requires_grad=True)
    seen: list[list[float] | None] = []
    remove = register_post_backward_hook(lambda: seen.append(None if w.grad is None else w.grad.tolist()))
    try:
        (w * 3).sum().backward()
        (w * w).sum().backward()
    finally:
        remove()
    (w * 5).sum().backward()
    assert seen == [[3.0, 3.0], [5.0, 7.0]]  # the second sees the accumulated gradient; none after removal
    np.testing.assert_allclose(w.grad.numpy(), [10.0, 12.0])
    remove()  # removing twice is harmless
