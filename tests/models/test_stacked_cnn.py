"""StackedCNN: K CNNs as one network, the convolutions grouped. In float32 (what workers
train in), on the CPU, with one thread, its convolution blocks compute each trial's maps
and gradients bit for bit as the trial's own CNN does wherever oneDNN's grouped kernel is
its plain one (channels in multiples of 8, and a 1-channel input, which runs trial by
trial), and within float32 rounding elsewhere (``models/_stacked_cnn.py``). In float64
every case is bitwise (``test_stacked.py``'s CNN cases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from models import CNN, ConvBlock
from models._stacked_cnn import StackedCNN

K, B = 8, 32


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _nets(blocks: tuple[ConvBlock, ...], channels: int = 1) -> list[CNN]:
    return [
        CNN((channels, 8, 8), blocks, (16,), 10, generator=torch.Generator().manual_seed(k))
        for k in range(K)
    ]


BLOCKS = {
    "8 and 16 channels": (1, (ConvBlock(8, batch_norm=True), ConvBlock(16, pool="avg"))),
    "3, 4 and 6 channels": (3, (ConvBlock(4, batch_norm=True), ConvBlock(6, pool="none"))),
}


@pytest.mark.parametrize("case", list(BLOCKS))
def test_the_convolution_blocks_are_each_trials_own(case: str) -> None:
    channels, blocks = BLOCKS[case]
    same = _equal if case == "8 and 16 channels" else _close
    nets = _nets(blocks, channels)
    stack = StackedCNN(nets)
    x = torch.randn(K, B, channels * 64, generator=torch.Generator().manual_seed(9))
    images = x.reshape(K, B, channels, 8, 8).transpose(0, 1).reshape(B, K * channels, 8, 8)
    maps = stack.features(images)  # (B, K*C, H, W), trial k's channels the k-th block
    per_trial = maps.reshape(B, K, -1).transpose(0, 1)  # (K, B, C*H*W)
    upstream = torch.randn(per_trial.shape, generator=torch.Generator().manual_seed(3))
    (per_trial * upstream).sum().backward()
    for k, net in enumerate(nets):
        alone = net.features(x[k].reshape(B, channels, 8, 8))
        assert same(per_trial[k], alone)
        (alone * upstream[k]).sum().backward()
        stacked = dict(stack.features.named_parameters())
        for name, p in net.features.named_parameters():
            assert p.grad is not None and stacked[name].grad is not None
            assert same(stacked[name].grad[k], p.grad), name


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a, b)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Within float32 rounding of the tensor's scale (measured: 3e-6)."""
    return bool((a - b).abs().max() <= 1e-5 * b.abs().max())


def test_trials_are_cut_out_and_dropped_by_name() -> None:
    nets = _nets((ConvBlock(4, batch_norm=True), ConvBlock(8)))
    stack = StackedCNN(nets).eval()
    assert stack.state_dict().keys() == nets[0].state_dict().keys()
    x = torch.randn(B, 64)
    out = stack(x.expand(K, B, 64))  # (K, B, outputs)
    for k in (0, 5):
        for name, value in nets[k].state_dict().items():
            assert torch.equal(stack.trial_state(k)[name], value)
        torch.testing.assert_close(out[k], nets[k].eval()(x), rtol=1e-6, atol=1e-6)
    stack.keep_trials([5, 0])
    assert stack.n_trials == 2
    for k, original in enumerate((5, 0)):
        for name, value in nets[original].state_dict().items():
            assert torch.equal(stack.trial_state(k)[name], value)
    with pytest.raises(ValueError, match="different convolution blocks"):
        StackedCNN([nets[0], _nets((ConvBlock(4), ConvBlock(8)))[1]])
