"""Several MLP or CNN trials trained as one stacked model: each sees what it would see alone.

``train_stacked(configs, data)`` trains K trials as one ``StackedMLP`` (a leading trial axis,
batched matmuls) or ``StackedCNN`` (grouped convolutions, then a ``StackedMLP`` head) with
one ``StackedOptimizer``, and returns the ``TrainResult`` each would get from
``train(config, data)``: its per-epoch losses agree with a run alone to rounding
(``tests/models/test_stacked.py`` states the measured deviation).

What a stack shares (``stack_key``, checked): the model, its layout (depth, activation,
dropout on or off, batch norm, residual blocks and their shortcut kinds; a CNN's
convolution blocks and head), the batch size, the optimizer and the device. Everything
else is per trial: the seed (initial weights, shuffle order, dropout masks:
``models._streams``), lr and its schedule, keep_prob, weight_decay, l1, momentum,
clip_norm, early stopping, epochs, divergence_factor, image augmentation, and the hidden
widths (zero-padded to the widest; independent of the stack-mates only at equal widths:
``models._stack_groups``). ``stack_groups`` splits configs into stacks.

Each trial is judged every epoch as alone: the divergence rule after each batch (on CUDA
every ``CUDA_DIVERGENCE_CHECK_EVERY`` batches), then its own ``on_epoch`` callback (True
stops it, as a pruner's verdict would) and early stopping. A trial that ends leaves the
stack at once: its result goes to ``on_end`` right then, and the others carry on with the
stack cut down to them (every tensor, optimizer state included, index-selected).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from models._augment import Augment
from models._checkpoint import config_key
from models._cnn import CNN
from models._config import TrainConfig
from models._datasets import Dataset
from models._early_stop import EarlyStopping
from models._mlp import MLP, use_dropout_generator
from models._stack_groups import check_stack
from models._stacked_checkpoint import Stopped, stacked_checkpoint
from models._stacked_cnn import StackedCNN
from models._stacked_mlp import StackedLinear, StackedMLP
from models._stacked_optim import StackedOptimizer, clip_grad_norms
from models._streams import TrialStreams, trial_streams
from models.train import (
    _EVAL_CHUNK,
    CUDA_DIVERGENCE_CHECK_EVERY,
    EpochMetrics,
    OnEpoch,
    TrainResult,
    _build_augment,
    _build_model,
    _diverged,
    _finish,
    _record,
    resolve_device,
    scores_of,
)

# The trials that ended together (one epoch's verdicts), {index in configs: result}, in
# stack order: called once for each such moment.
OnEnd = Callable[[dict[int, TrainResult]], None]
_EVAL_FLOATS = 1 << 24  # activations per layer when evaluating a stack: rows per chunk follow
Stacked = StackedMLP | StackedCNN


@dataclass(eq=False)
class _Trial:
    """One trial of a stack: its config, streams, own network (given its weights when it
    ends), result so far and callback."""

    index: int
    config: TrainConfig
    streams: TrialStreams
    net: MLP | CNN
    on_epoch: OnEpoch | None
    augment: Augment | None
    stopper: EarlyStopping | None
    result: TrainResult = field(init=False)
    limit: float = math.inf  # divergence: divergence_factor * initial loss
    train_loss: float = math.nan  # the last epoch's mean batch loss


@dataclass(eq=False)
class _Stack:
    """The live trials (in stack order), their network and optimizer, this epoch's rows
    per trial, and how an ending trial is reported."""

    live: list[_Trial]
    model: Stacked
    optimizer: StackedOptimizer
    data: Dataset
    start: float
    on_end: OnEnd | None
    orders: torch.Tensor | None = None  # (K, N): this epoch's shuffle order per trial
    loss_sums: torch.Tensor | None = None  # (K,): this epoch's summed batch losses
    lr: list[float] = field(default_factory=list)  # this epoch's lr per trial
    # What every step needs of the live trials, kept until the stack is cut down
    # (``keep_trials`` replaces the parameters): not rebuilt per batch.
    params: list[torch.Tensor] = field(init=False)
    l1: torch.Tensor | None = field(init=False)  # (K,) L1 weights; None: no trial has L1
    clip: list[float] | None = field(init=False)  # per trial; None: no trial clips
    augmented: bool = field(init=False)  # some trial augments its batches

    def __post_init__(self) -> None:
        self._per_step()

    def _per_step(self) -> None:
        configs = [t.config for t in self.live]
        self.params = list(self.model.parameters())
        device = self.data.train_x.device
        has_l1 = any(c.l1 > 0 for c in configs)
        self.l1 = torch.tensor([c.l1 for c in configs], device=device) if has_l1 else None
        has_clip = any(c.clip_norm is not None for c in configs)
        self.clip = [c.clip_norm or math.inf for c in configs] if has_clip else None
        self.augmented = any(t.augment is not None for t in self.live)

    def end(self, ended: dict[_Trial, str | None]) -> None:
        """Finish each trial in ``ended`` (with its reason: "diverged", "stopped", None
        for completed), report it, and cut the stack down to the others."""
        if not ended:
            return
        for k, t in enumerate(self.live):
            if t in ended:
                _finish_trial(t, ended[t], _TrialWeights(self.model, k), self)
        if self.on_end is not None:
            self.on_end({t.index: t.result for t in self.live if t in ended})
        alive = [t for t in self.live if t not in ended]
        rows = [k for k, t in enumerate(self.live) if t not in ended]
        self.live = alive
        if alive:
            self.model.keep_trials(rows)
            self.optimizer.keep_trials(rows)
            self._per_step()
        if self.orders is not None and self.loss_sums is not None:
            index = torch.tensor(rows, device=self.orders.device, dtype=torch.long)
            self.orders, self.loss_sums = self.orders[index], self.loss_sums[index]
        self.lr = [self.lr[k] for k in rows] if self.lr else []


class _TrialWeights:
    """Trial k's slice of a stacked network, read as early stopping reads a network."""

    def __init__(self, model: Stacked, k: int) -> None:
        self.model, self.k = model, k

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.trial_state(self.k)


def _finish_trial(t: _Trial, reason: str | None, weights: _TrialWeights, stack: _Stack) -> None:
    """As ``train`` ends a run: a diverged trial keeps no network; the others get their
    weights (early stopping: its best epoch's) and are scored on the training set."""
    if reason == "diverged":
        _finish(t.result, reason, stack.start)
        return
    net = t.net.to(stack.data.train_x.device)
    net.load_state_dict(weights.state_dict())
    if reason == "stopped":  # as train leaves it: a checkpoint the slot's retry resumes from
        device = stack.data.train_x.device
        stopped = Stopped(
            t.result.epochs_run, config_key(t.config, device), t.result.history, t.result.lr
        )
        t.result.checkpoint = stacked_checkpoint(
            stack.model,
            stack.optimizer,
            weights.k,
            net,
            t.config,
            streams=t.streams,
            stopper=t.stopper,
            stopped=stopped,
        )
    if t.stopper is not None and reason is None and t.stopper.best_epoch is not None:
        t.stopper.restore(net)
        t.result.best_epoch, t.result.final = t.stopper.best_epoch, t.stopper.best_metrics
    _finish(t.result, reason, stack.start, net, stack.data)


def train_stacked(
    configs: Sequence[TrainConfig],
    data: Dataset,
    on_epoch: Sequence[OnEpoch | None] | None = None,
    on_end: OnEnd | None = None,
) -> list[TrainResult]:
    """Train ``configs`` (one stack: ``check_stack``) on ``data`` together; the results in
    the order of ``configs``, each as ``train(config, data, on_epoch[k])`` gives it.

    ``on_epoch[k]`` gets trial k's epochs (0, then each completed one); returning True stops
    that trial ("stopped"), as a pruner's verdict does alone. ``on_end({k: result, ...})``
    is called as soon as trials end (those ending at one epoch's close together), while
    the others may train on; a result's ``duration_s`` counts from the start of the stack.
    """
    start = time.perf_counter()
    check_stack(configs)
    callbacks = list(on_epoch) if on_epoch is not None else [None] * len(configs)
    if len(callbacks) != len(configs):
        raise ValueError(f"{len(configs)} configs but {len(callbacks)} on_epoch callbacks")
    device = resolve_device(configs[0].device)
    data = data.to(device)
    trials = [_new_trial(i, c, data, device, callbacks[i]) for i, c in enumerate(configs)]
    model = _stacked_model([t.net for t in trials]).to(device)
    model.use_dropout_generators([t.streams.dropout for t in trials])
    optimizer = StackedOptimizer(
        configs[0].optimizer,
        weight_decay=[c.weight_decay for c in configs],
        momentum=[c.momentum for c in configs],
    )
    stack = _Stack(list(trials), model, optimizer, data, start, on_end)
    stack.end(_begin(stack))
    epoch = 0
    while stack.live:
        epoch += 1
        _train_epoch(stack, epoch)
        if stack.live:  # all may have diverged
            stack.end(_close_epoch(stack, epoch))
    return [t.result for t in trials]


def _new_trial(
    index: int, config: TrainConfig, data: Dataset, device: torch.device, on_epoch: OnEpoch | None
) -> _Trial:
    streams = trial_streams(config.seed, device)
    net = _build_model(config, data, streams.init)
    assert isinstance(net, (MLP, CNN))
    use_dropout_generator(net, streams.dropout)
    stopper = EarlyStopping(config.patience, config.min_delta) if config.patience else None
    augment = _build_augment(config, data)
    return _Trial(index, config, streams, net, on_epoch, augment, stopper)


def _stacked_model(nets: list[MLP | CNN]) -> Stacked:
    if all(isinstance(n, CNN) for n in nets):
        return StackedCNN([n for n in nets if isinstance(n, CNN)])
    return StackedMLP([n for n in nets if isinstance(n, MLP)])


def _begin(stack: _Stack) -> dict[_Trial, str | None]:
    """Epoch 0: each trial's loss at initialisation; the trials that end here (a
    non-finite initial loss diverges; a callback may stop a trial before it trains)."""
    data = stack.data
    initial = _evaluate(stack.model, data.train_x, data.train_y, data.task)
    dev = _evaluate(stack.model, data.dev_x, data.dev_y, data.task)
    ended: dict[_Trial, str | None] = {}
    for t, (loss, _), (dev_loss, dev_accuracy) in zip(stack.live, initial, dev, strict=True):
        t.result = TrainResult("completed", None, 0, loss, [], [], [], 0.0, None)
        t.limit = t.config.divergence_factor * loss
        s = scores_of(dev_loss, dev_accuracy, data.dev_y, data)
        stop = _record(
            t.result, EpochMetrics(0, loss, s.loss, s.accuracy, s.rmse, s.r2), t.on_epoch
        )
        if not math.isfinite(loss):
            ended[t] = "diverged"
        elif stop:
            ended[t] = "stopped"
    return ended


def _train_epoch(stack: _Stack, epoch: int) -> None:
    """One pass over each live trial's own shuffle of the training set. A trial that
    diverges leaves the stack at once, mid-epoch."""
    x = stack.data.train_x  # (N, F)
    stack.lr = [t.config.lr * t.config.schedule.factor(epoch) for t in stack.live]
    for t, lr in zip(stack.live, stack.lr, strict=True):
        t.result.lr.append(lr)
    orders = [
        torch.randperm(x.shape[0], generator=t.streams.data, device=x.device) for t in stack.live
    ]
    stack.orders = torch.stack(orders)  # (K, N)
    stack.loss_sums = torch.zeros(len(stack.live), device=x.device)  # (K,)
    check_every = 1 if x.device.type == "cpu" else CUDA_DIVERGENCE_CHECK_EVERY
    batch_size = stack.live[0].config.batch_size
    n_batches = 0
    for first in range(0, x.shape[0], batch_size):
        losses = _batch_losses(stack, first, batch_size)  # (K,)
        stack.loss_sums += losses.detach()
        n_batches += 1
        diverged = _diverging(stack, n_batches) if n_batches % check_every == 0 else []
        _step(stack, losses)
        stack.end(dict.fromkeys(diverged, "diverged"))
        if not stack.live:
            return
    stack.end(dict.fromkeys(_diverging(stack, n_batches), "diverged"))
    assert stack.loss_sums is not None
    for t, loss_sum in zip(stack.live, stack.loss_sums.tolist(), strict=True):
        t.result.epochs_run = epoch
        t.train_loss = loss_sum / n_batches


def _diverging(stack: _Stack, n_batches: int) -> list[_Trial]:
    """The live trials whose running mean batch loss this epoch is not finite or above
    their limit."""
    assert stack.loss_sums is not None
    sums = stack.loss_sums.tolist()
    return [t for t, s in zip(stack.live, sums, strict=True) if _diverged(s / n_batches, t.limit)]


def _batch_losses(stack: _Stack, first: int, batch_size: int) -> torch.Tensor:
    """Each live trial's mean loss on its own next minibatch (rows first.. of its order)."""
    assert stack.orders is not None
    data = stack.data
    idx = stack.orders[:, first : first + batch_size]  # (K, B)
    if stack.augmented:
        xb = torch.stack(
            [
                data.train_x[i] if t.augment is None else t.augment(data.train_x[i], t.streams.data)
                for t, i in zip(stack.live, idx, strict=True)
            ]
        )  # (K, B, F)
    else:
        xb = data.train_x.index_select(0, idx.reshape(-1)).reshape(*idx.shape, -1)  # (K, B, F)
    out = stack.model(xb)  # (K, B, C) logits, or (K, B, 1) predictions
    k, b = idx.shape
    if data.task == "classification":
        losses = F.cross_entropy(
            out.reshape(k * b, -1), data.train_y[idx].reshape(-1), reduction="none"
        )
    else:
        losses = F.mse_loss(out, data.train_y[idx], reduction="none")  # (K, B, 1)
    return losses.reshape(k, b).mean(dim=1)  # (K,)


def _step(stack: _Stack, losses: torch.Tensor) -> None:
    """Backpropagate every trial's loss (plus its L1 penalty), clip each trial's gradient
    to its own norm, and update: each trial's slice as its own step would alone."""
    params = stack.params
    for p in params:
        p.grad = None
    total = losses.sum()
    if stack.l1 is not None:
        weights = [m.weight for m in stack.model.modules() if isinstance(m, StackedLinear)]
        norms = torch.stack([w.abs().sum(dim=(1, 2)) for w in weights]).sum(dim=0)  # (K,)
        total = total + (stack.l1 * norms).sum()
    total.backward()
    if stack.clip is not None:
        clip_grad_norms(params, stack.clip)
    stack.optimizer.step(params, stack.lr)


def _close_epoch(stack: _Stack, epoch: int) -> dict[_Trial, str | None]:
    """Each live trial's dev metrics for ``epoch``, its callback and early stopping; the
    trials that end now (stopped, stopped early, or through their epochs)."""
    data = stack.data
    dev = _evaluate(stack.model, data.dev_x, data.dev_y, data.task)
    ended: dict[_Trial, str | None] = {}
    for k, (t, (loss, accuracy)) in enumerate(zip(stack.live, dev, strict=True)):
        s = scores_of(loss, accuracy, data.dev_y, data)
        metrics = EpochMetrics(epoch, t.train_loss, s.loss, s.accuracy, s.rmse, s.r2)
        stop = _record(t.result, metrics, t.on_epoch)
        weights = _TrialWeights(stack.model, k)
        if t.stopper is not None and t.stopper.update(epoch, s.loss, weights, metrics):
            t.result.stopped_early_at = None if stop else epoch
            ended[t] = "stopped" if stop else None
        elif stop:
            ended[t] = "stopped"
        elif epoch == t.config.epochs:
            ended[t] = None
    return ended


@torch.no_grad()
def _evaluate(
    model: Stacked, x: torch.Tensor, y: torch.Tensor, task: str
) -> list[tuple[float, float | None]]:
    """Each trial's mean loss and accuracy (None for regression) on (x, y), in eval mode,
    summed per trial as ``models.train.evaluate`` sums alone (up to the chunking of a split
    too large for one chunk of the stack)."""
    was_training = model.training
    model.eval()
    k = model.n_trials
    rows = max(1, min(_EVAL_CHUNK, _EVAL_FLOATS // (k * max(model.row_floats, x.shape[1]))))
    loss_sums = torch.zeros(k, device=x.device, dtype=torch.float64)  # as evaluate sums
    correct = torch.zeros(k, device=x.device, dtype=torch.int64)
    for xb, yb in zip(x.split(rows), y.split(rows), strict=True):
        out = model(xb.expand(k, *xb.shape))  # (K, B, C) or (K, B, 1)
        b = xb.shape[0]
        if task == "classification":
            losses = F.cross_entropy(out.reshape(k * b, -1), yb.repeat(k), reduction="none")
            loss_sums += losses.reshape(k, b).sum(dim=1)  # (K,)
            correct += (out.argmax(dim=2) == yb).sum(dim=1)  # yb: (B,) against (K, B)
        else:
            target = yb.expand(k, *yb.shape)  # (K, B, 1)
            loss_sums += F.mse_loss(out, target, reduction="none").sum(dim=(1, 2))
    model.train(was_training)
    n = x.shape[0]
    return [
        (s / n, c / n if task == "classification" else None)
        for s, c in zip(loss_sums.tolist(), correct.tolist(), strict=True)
    ]


__all__ = ["OnEnd", "train_stacked"]
