"""``trainer.py``'s three ways to train one config: hpsearch's ``models.train``, a minimal
hand-written PyTorch loop, and the textbook ``DataLoader(TensorDataset)`` loop.

Each takes the same ``TrainConfig`` and ``Dataset`` (preloaded tensors), builds the same
network with the same init seed and optimizer, and returns seconds per epoch. An epoch
is the training pass plus one dev-loss evaluation (``train`` evaluates the dev split after
every epoch too, with its accuracy).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from models import CNN, MLP, Dataset, TrainConfig, resolve_device, train

Clock = Callable[[], float]
EpochTimes = Callable[[TrainConfig, Dataset, Clock], list[float]]


def synthetic_dataset(n: int = 20000, n_features: int = 64, n_classes: int = 10) -> Dataset:
    """A separable-ish classification set from a random linear teacher, split 60/20/20."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, n_features, generator=g)  # (N, F)
    teacher = torch.randn(n_features, n_classes, generator=g)  # (F, C)
    y = (x @ teacher + 0.5 * torch.randn(n, n_classes, generator=g)).argmax(dim=1)  # (N,)
    a, b = int(0.6 * n), int(0.8 * n)
    return Dataset(
        name=f"synthetic{n}x{n_features}",
        task="classification",
        n_features=n_features,
        n_classes=n_classes,
        train_x=x[:a],
        train_y=y[:a],
        dev_x=x[a:b],
        dev_y=y[a:b],
        test_x=x[b:],
        test_y=y[b:],
    )


def hpsearch_epoch_times(config: TrainConfig, data: Dataset, clock: Clock) -> list[float]:
    """Seconds per epoch of ``train``: the gaps between consecutive ``on_epoch`` calls."""
    stamps: list[float] = []

    def on_epoch(_: object) -> None:
        stamps.append(clock())

    result = train(config, data, on_epoch)
    assert result.status == "completed", result.status
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def _model(config: TrainConfig, data: Dataset, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(config.seed)
    if config.model == "cnn":
        assert data.image_shape is not None
        return CNN(data.image_shape, config.conv, config.hidden, data.n_classes).to(device)
    return MLP(data.n_features, config.hidden, data.n_classes).to(device)


def _dev_loss(model: torch.nn.Module, data: Dataset) -> float:
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(data.dev_x), data.dev_y).item()


def minimal_epoch_times(config: TrainConfig, data: Dataset, clock: Clock) -> list[float]:
    """The minimal loop: Adam, ``randperm`` slicing of the preloaded tensors, one dev-loss
    evaluation per epoch."""
    device = resolve_device(config.device)
    data = data.to(device)
    model = _model(config, data, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    x, y, n, bs = data.train_x, data.train_y, data.train_x.shape[0], config.batch_size
    times = []
    for _ in range(config.epochs):
        start = clock()
        model.train()
        perm = torch.randperm(n, generator=generator, device=device)  # (N,)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]  # (B,)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _dev_loss(model, data)
        times.append(clock() - start)
    return times


def dataloader_epoch_times(config: TrainConfig, data: Dataset, clock: Clock) -> list[float]:
    """The textbook loop: ``DataLoader(TensorDataset(x, y), shuffle=True)`` over the same
    preloaded tensors (rows fetched one by one and collated into each batch)."""
    device = resolve_device(config.device)
    data = data.to(device)
    model = _model(config, data, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)  # DataLoader shuffles on the CPU
    loader = DataLoader(
        TensorDataset(data.train_x, data.train_y),
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
    )
    times = []
    for _ in range(config.epochs):
        start = clock()
        model.train()
        for xb, yb in loader:  # (B, F), (B,)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _dev_loss(model, data)
        times.append(clock() - start)
    return times


VARIANTS: dict[str, EpochTimes] = {
    "hpsearch": hpsearch_epoch_times,
    "minimal": minimal_epoch_times,
    "DataLoader": dataloader_epoch_times,
}

__all__ = ["VARIANTS", "Clock", "EpochTimes", "synthetic_dataset"]
