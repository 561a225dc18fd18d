"""``trainer.py --options``: each toolbox option's epoch in ``train`` vs a minimal
hand-written loop that does the same thing (same model, same penalty, clipping, schedule,
optimizer or early-stopping snapshot), on the same data."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models import MLP, Dataset, TrainConfig

# (label, TrainConfig fields) of each option measured alone.
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("batch_norm", {"batch_norm": True}),
    ("residual", {"residual": True}),
    ("l1", {"l1": 1e-5}),
    ("cosine+warmup", {"lr_schedule": "cosine", "lr_warmup_epochs": 2}),
    ("clip_norm", {"clip_norm": 1.0}),
    ("adamw", {"optimizer": "adamw", "weight_decay": 1e-2}),
    ("patience", {"patience": 1000}),  # never stops: the per-epoch check and snapshot only
]


def reference_epoch_times(
    config: TrainConfig, data: Dataset, clock: Callable[[], float]
) -> list[float]:
    """The minimal loop with ``config``'s option written out by hand."""
    torch.manual_seed(config.seed)
    model = MLP(data.n_features, config.hidden, data.n_classes,
                batch_norm=config.batch_norm, residual=config.residual)  # fmt: skip
    make = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = make(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warm, epochs = config.lr_warmup_epochs, config.epochs
    cosine = config.lr_schedule == "cosine"
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    generator = torch.Generator().manual_seed(config.seed)
    x, y, n, bs = data.train_x, data.train_y, data.train_x.shape[0], config.batch_size
    best, kept, times = math.inf, None, []
    for epoch in range(1, epochs + 1):
        start = clock()
        if cosine:
            t = epoch - warm - 1
            factor = (
                epoch / (warm + 1)
                if epoch <= warm
                else (1 + math.cos(math.pi * t / (epochs - warm))) / 2
            )
            optimizer.param_groups[0]["lr"] = config.lr * factor  # fmt: skip
        model.train()
        perm = torch.randperm(n, generator=generator)  # (N,)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]  # (B,)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if config.l1 > 0:
                loss = loss + config.l1 * sum(w.abs().sum() for w in weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            dev = F.cross_entropy(model(data.dev_x), data.dev_y).item()
        if config.patience is not None and dev < best:
            best, kept = dev, {k: v.detach().clone() for k, v in model.state_dict().items()}
        times.append(clock() - start)
    del kept
    return times


__all__ = ["OPTIONS", "reference_epoch_times"]
