"""StackedCNN: K CNNs as one network, the convolutions grouped.

Stacked training gives each CNN trial what it gets alone, for every CNN option, as
``test_stacked.py`` checks the MLP's (its module docstring says how and why): in float64
every case within 1e-9 (measured 6e-16). In float32 (what workers train in), on the CPU,
with one thread, the convolution blocks compute each trial's maps bit for bit as its own
CNN does wherever oneDNN's grouped kernel is its plain one (channels in multiples of 8,
and a 1-channel input, which runs trial by trial), and their gradients too with AVX2
kernels; within float32 rounding elsewhere (``models/_stacked_cnn.py``)."""

from __future__ import annotations

import pytest
import torch

from models import CNN, ConvBlock, TrainConfig
from models._stacked_cnn import StackedCNN
from tests.models.test_stacked import CNN as CNN_CONFIG
from tests.models.test_stacked import (  # noqa: F401  (float64, one_thread: fixtures)
    _none,
    _stack,
    float32_stacks_track_alone,
    float64,
    one_thread,
    stacks_train_as_alone,
)

K, B = 8, 32

# test_stacked.py's equivalence, for CNN options: each of 8 trials, stacked, as alone
CASES: dict[str, tuple[str, list[TrainConfig]]] = {
    "cnn": ("digits", _stack(_none, **CNN_CONFIG)),
    "cnn batch norm, dropout, flatten, padded head": (
        "digits",
        _stack(
            lambda k: {"keep_prob": 0.6 + 0.05 * k, "hidden": ((16,), (12,), (9,))[k % 3]},
            **CNN_CONFIG | {"conv": (ConvBlock(4, batch_norm=True), ConvBlock(6, pool="avg"))},
            conv_head="flatten",
            keep_prob=0.8,
        ),
    ),
    "cnn sigmoid, kernel 5, stride 2, padding, inits": (  # 6x6 and 3x3 maps, partial vectors
        "digits",
        _stack(
            lambda k: {"weight_init": ("xavier", "he", "normal")[k % 3]},
            **CNN_CONFIG
            | {
                "conv": (
                    ConvBlock(3, kernel_size=5, stride=1, padding=1, pool="none"),
                    ConvBlock(5, kernel_size=3, stride=2, padding=1, pool="none"),
                )
            },
            activation="sigmoid",
        ),
    ),
    "cnn tanh, momentum, L1, L2, clipping": (
        "digits",
        _stack(
            lambda k: {
                "l1": 1e-4 * (k % 3),
                "weight_decay": 1e-3 * (k % 2),
                "momentum": 0.5 + 0.05 * k,
                "clip_norm": (None, 0.5)[k % 2],
            },
            **CNN_CONFIG,
            activation="tanh",
            optimizer="momentum",
            lr=0.02,
        ),
    ),
    "cnn leaky_relu, rmsprop, augmentation, schedules": (
        "digits",
        _stack(
            lambda k: {
                "augment_shift": k % 3,
                "augment_rotation": 5.0 * (k % 2),
                "lr_schedule": ("constant", "step", "exponential", "cosine")[k % 4],
            },
            **CNN_CONFIG,
            activation="leaky_relu",
            optimizer="rmsprop",
            lr=1e-3,
        ),
    ),
    "cnn early stopping, divergence": (
        "digits",
        _stack(
            lambda k: {
                "patience": (None, 1)[k % 2],
                "min_delta": 0.01,
                "epochs": 3 + k % 3,
                "lr": (0.05, 40.0, 0.1, 0.03, 8.0, 0.05, 0.2, 0.02)[k],
            },
            **CNN_CONFIG,
            optimizer="sgd",
        ),
    ),
}
CHAOTIC = ("cnn early stopping, divergence",)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("case", list(CASES))
def test_each_cnn_trial_of_a_stack_trains_as_alone(case: str) -> None:
    stacks_train_as_alone(*CASES[case])


@pytest.mark.parametrize("case", [c for c in CASES if c not in CHAOTIC])
def test_float32_cnn_stacks_track_their_trials_alone(case: str) -> None:
    float32_stacks_track_alone(*CASES[case])


def _nets(blocks: tuple[ConvBlock, ...], channels: int = 1) -> list[CNN]:
    return [
        CNN((channels, 8, 8), blocks, (16,), 10, generator=torch.Generator().manual_seed(k))
        for k in range(K)
    ]


BLOCKS = {
    "8 and 16 channels": (1, (ConvBlock(8, batch_norm=True), ConvBlock(16, pool="avg"))),
    "3, 4 and 6 channels": (3, (ConvBlock(4, batch_norm=True), ConvBlock(6, pool="none"))),
}


# oneDNN's AVX-512 kernels take a grouped convolution's input gradient in another order than
# the plain one's (measured: its outputs still bitwise, the gradients behind it within
# 1.9e-6); its AVX2 kernels, measured bitwise, are what the bitwise case checks.
BITWISE_ISA = torch.backends.cpu.get_cpu_capability() == "AVX2"


@pytest.mark.parametrize("case", list(BLOCKS))
def test_the_convolution_blocks_are_each_trials_own(case: str) -> None:
    channels, blocks = BLOCKS[case]
    bitwise = case == "8 and 16 channels"
    same = _equal if bitwise else _close
    same_grad = _equal if bitwise and BITWISE_ISA else _close
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
            assert same_grad(stacked[name].grad[k], p.grad), name


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
