"""StackedMLP: K MLPs as one network with a leading trial axis (padding, shrinking)."""

from __future__ import annotations

import pytest
import torch

from models import MLP
from models._stacked_mlp import StackedMLP


def _nets(widths: tuple[int, ...]) -> list[MLP]:
    return [
        MLP(
            4, (w, 3), 2, keep_prob=0.5, batch_norm=True, generator=torch.Generator().manual_seed(k)
        )
        for k, w in enumerate(widths)
    ]


def test_each_trial_is_its_own_network_padded_to_the_widest() -> None:
    nets = _nets((5, 8, 6))
    stack = StackedMLP(nets).eval()
    assert stack.state_dict().keys() == nets[0].state_dict().keys()
    assert stack.state_dict()["net.0.weight"].shape == (3, 8, 4)  # (K, widest, features)
    x = torch.randn(10, 4)
    out = stack(x.expand(3, 10, 4))  # (K, B, outputs)
    for k, net in enumerate(nets):
        for name, value in net.state_dict().items():
            assert torch.equal(stack.trial_state(k)[name], value)
        torch.testing.assert_close(out[k], net.eval()(x))


def test_a_shrunk_stack_keeps_each_remaining_trial_as_it_was() -> None:
    stack = StackedMLP(_nets((5, 8, 6)))
    before = [stack.trial_state(k) for k in range(3)]
    stack.keep_trials([2, 0])
    assert stack.n_trials == 2
    for row, k in enumerate((2, 0)):
        now = stack.trial_state(row)
        assert all(torch.equal(now[name], value) for name, value in before[k].items())
    assert all(p.is_leaf and p.shape[0] == 2 for p in stack.parameters())
    assert stack.train()(torch.randn(2, 7, 4)).shape == (2, 7, 2)


def test_only_one_layout_stacks() -> None:
    with pytest.raises(ValueError, match="layouts"):
        StackedMLP([MLP(4, (5,), 2), MLP(4, (5,), 2, keep_prob=0.5)])
    with pytest.raises(ValueError, match="at least one"):
        StackedMLP([])
