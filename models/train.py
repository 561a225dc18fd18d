"""The training loop: a config, a dataset and a per-epoch callback in, metrics out.

Pure PyTorch: no storage, no HTTP, no search library. The caller decides what to do with
each epoch's metrics through ``on_epoch`` (return True to stop); the loop itself only
enforces the divergence rule: stop as soon as the running training loss of an epoch is not
finite or climbs above ``divergence_factor`` times the loss at initialisation, and, with
``patience`` set, early stopping on the dev loss (a complete run that keeps its best epoch).

A trial's randomness is its own (``models._streams``): its initial weights, shuffle order and
dropout masks come from generators seeded from ``config.seed``, never from torch's global
generator, so a trial draws the same numbers alone or stacked with others
(``models._stacked``).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models._augment import Augment
from models._checkpoint import Checkpoint, RunState, config_key
from models._cnn import CNN
from models._config import DEVICE_NAME, TrainConfig
from models._datasets import Dataset
from models._early_stop import EarlyStopping
from models._mlp import MLP, use_dropout_generator
from models._results import EpochMetrics, Scores, TrainResult
from models._schedules import build_scheduler
from models._step import make_step
from models._streams import TrialStreams, trial_streams

# On CUDA, reading the running loss forces a host sync; check it every this many batches
# (and at the end of every epoch) instead of after each one. On CPU every batch is checked.
CUDA_DIVERGENCE_CHECK_EVERY = 8
_EVAL_CHUNK = 16384  # rows per forward pass when evaluating a whole split

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


OnEpoch = Callable[[EpochMetrics], bool | None]  # return True to stop training


def resolve_device(name: str) -> torch.device:
    """ "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"unknown device {name!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return device


def warm_up() -> None:
    """Pay torch's one-time lazy imports now, not inside the first run: the first optimizer
    loads torch's compiler package (about 2 s on a small CPU)."""
    weight = nn.Parameter(torch.zeros(1))
    torch.optim.SGD([weight], lr=0.1).step()


def train(
    config: TrainConfig,
    data: Dataset,
    on_epoch: OnEpoch | None = None,
    *,
    resume: Checkpoint | None = None,
) -> TrainResult:
    """Train the config's network (MLP or CNN) on ``data.train_*``, evaluating on
    ``data.dev_*`` after every epoch.

    ``on_epoch`` gets epoch 0 (before any update) and then each completed epoch; returning
    True stops the run with status "stopped" (its ``checkpoint`` then saves it). A
    diverging run stops within its epoch. With ``patience`` set, a run whose dev loss stops
    improving ends early as "completed", keeping its best epoch's weights and metrics.

    ``resume``: a checkpoint of a stopped run of this config (ValueError for another's);
    the run goes on after its epoch and ends as the run never stopped would have.
    ``on_epoch`` first gets the checkpoint's epochs again, so the caller sees every epoch
    (a stop asked during them stops the run at the checkpoint's epoch).
    """
    start = time.perf_counter()
    device = resolve_device(config.device)
    key = config_key(config, device)
    if resume is not None and resume.config_key != key:
        raise ValueError("the checkpoint is of another configuration or kind of device")
    data = data.to(device)
    streams = trial_streams(config.seed, device)
    model = _build_model(config, data, streams.init).to(device)
    use_dropout_generator(model, streams.dropout)
    run = _run_state(config, model, streams)
    if resume is not None:
        result, stop = _resumed(run, resume, on_epoch)
    else:
        initial_loss, _ = evaluate(model, data.train_x, data.train_y, data.task)
        result = _new_result(initial_loss)
        stop = _record(result, _dev_metrics(0, initial_loss, model, data), on_epoch)
        if not math.isfinite(initial_loss):
            return _finish(result, "diverged", start)
    return _run_epochs(config, data, run, result, on_epoch, stop=stop, start=start, key=key)


def _new_result(initial_loss: float) -> TrainResult:
    return TrainResult(
        status="completed",
        reason=None,
        epochs_run=0,
        initial_loss=initial_loss,
        train_loss=[],
        dev_loss=[],
        dev_accuracy=[],
        duration_s=0.0,
        final=None,
    )


def _run_state(config: TrainConfig, model: nn.Module, streams: TrialStreams) -> RunState:
    optimizer = _build_optimizer(config, model)
    stopper = EarlyStopping(config.patience, config.min_delta) if config.patience else None
    return RunState(model, optimizer, build_scheduler(optimizer, config.schedule), stopper, streams)


def _resumed(
    run: RunState, checkpoint: Checkpoint, on_epoch: OnEpoch | None
) -> tuple[TrainResult, bool]:
    """The run as ``checkpoint`` left it, its epochs given to ``on_epoch`` again; True
    if the callback asked to stop during them."""
    history = [EpochMetrics(**m) for m in checkpoint.history]  # epoch 0..checkpoint.epoch
    run.load(checkpoint)
    if run.stopper is not None and run.stopper.best_epoch is not None:
        run.stopper.best_metrics = history[run.stopper.best_epoch]
    result = _new_result(history[0].train_loss)  # epoch 0's train loss: the initial loss
    result.epochs_run = result.resumed_from = checkpoint.epoch
    result.lr = checkpoint.lr
    stops = [_record(result, m, on_epoch) for m in history]
    return result, any(stops)


def _run_epochs(
    config: TrainConfig,
    data: Dataset,
    run: RunState,
    result: TrainResult,
    on_epoch: OnEpoch | None,
    *,
    stop: bool,
    start: float,
    key: str,
) -> TrainResult:
    model, stopper = run.model, run.stopper
    step = make_step(model, run.optimizer, l1=config.l1, clip_norm=config.clip_norm)
    augment = _build_augment(config, data)
    loss_fn: LossFn = F.cross_entropy if data.task == "classification" else F.mse_loss
    limit = config.divergence_factor * result.initial_loss
    epoch = result.epochs_run  # 0, or the epoch a resumed run was stopped at
    if stopper is not None and not stop and stopper.exhausted(epoch):
        result.stopped_early_at = epoch  # resumed at the epoch early stopping ended it
    while not stop and result.stopped_early_at is None and epoch < config.epochs:
        epoch += 1
        result.lr.append(run.optimizer.param_groups[0]["lr"])
        train_loss = _train_epoch(
            model, step, loss_fn, data, config.batch_size, run.streams.data, limit, augment
        )
        if train_loss is None:
            return _finish(result, "diverged", start)
        run.scheduler.step()
        result.epochs_run = epoch
        metrics = _dev_metrics(epoch, train_loss, model, data)
        stop = _record(result, metrics, on_epoch)
        if stopper is not None and stopper.update(epoch, metrics.dev_loss, model, metrics):
            if stop:
                break
            result.stopped_early_at = epoch
    if stop:
        result.checkpoint = functools.partial(
            run.save, epoch=epoch, config_key=key, history=result.history, lr=result.lr
        )
        return _finish(result, "stopped", start, model, data)
    if stopper is not None and stopper.best_epoch is not None:
        stopper.restore(model)
        result.best_epoch, result.final = stopper.best_epoch, stopper.best_metrics
    return _finish(result, None, start, model, data)


def _finish(
    result: TrainResult,
    reason: str | None,
    start: float,
    model: nn.Module | None = None,
    data: Dataset | None = None,
) -> TrainResult:
    """The run's end; a run that did not diverge keeps its model and is scored once on
    the whole training set (for reading bias against variance)."""
    if model is not None and data is not None:
        result.model = model
        result.train_scores = scores(model, data.train_x, data.train_y, data)
    result.status = reason or "completed"
    result.reason = reason
    result.duration_s = time.perf_counter() - start
    return result


def _build_model(
    config: TrainConfig, data: Dataset, generator: torch.Generator | None = None
) -> nn.Module:
    """The config's network on the CPU, its initial weights drawn from ``generator``."""
    n_outputs = data.n_classes if data.task == "classification" else 1
    if config.model == "cnn":
        if data.image_shape is None:
            raise ValueError(f"model cnn needs an image dataset; {data.name!r} is a table")
        return CNN(
            data.image_shape,
            config.conv,
            config.hidden,
            n_outputs,
            activation=config.activation,
            keep_prob=config.keep_prob,
            weight_init=config.weight_init,
            head=config.conv_head,
            generator=generator,
        )
    return MLP(
        data.n_features,
        config.hidden,
        n_outputs,
        activation=config.activation,
        keep_prob=config.keep_prob,
        weight_init=config.weight_init,
        batch_norm=config.batch_norm,
        residual=config.residual,
        generator=generator,
    )


def _build_augment(config: TrainConfig, data: Dataset) -> Augment | None:
    """Random shifts/rotations of training batches (image datasets), or None for none."""
    if config.augment_shift == 0 and config.augment_rotation == 0:
        return None
    return Augment(data, config.augment_shift, config.augment_rotation)


def _build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if config.optimizer == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)


def _train_epoch(
    model: nn.Module,
    step: Callable[[torch.Tensor], None],
    loss_fn: LossFn,
    data: Dataset,
    batch_size: int,
    generator: torch.Generator,
    limit: float,
    augment: Augment | None = None,
) -> float | None:
    """One pass over shuffled minibatches (each moved by ``augment`` when given); the mean
    batch loss, or None if it diverged."""
    model.train()
    x, y = data.train_x, data.train_y  # (N, F), (N,) or (N, 1)
    order = torch.randperm(x.shape[0], generator=generator, device=x.device)  # (N,)
    check_every = 1 if x.device.type == "cpu" else CUDA_DIVERGENCE_CHECK_EVERY
    loss_sum = torch.zeros((), device=x.device)  # running sum of batch losses, on device
    n_batches = 0
    for idx in order.split(batch_size):  # idx: (B,)
        xb = x[idx] if augment is None else augment(x[idx], generator)  # (B, F)
        loss = loss_fn(model(xb), y[idx])  # (B, F) -> (B, C) -> ()
        loss_sum += loss.detach()
        n_batches += 1
        if n_batches % check_every == 0 and _diverged(loss_sum.item() / n_batches, limit):
            return None
        step(loss)  # backward (with the L1 penalty), clip, update
    mean_loss = loss_sum.item() / n_batches
    return None if _diverged(mean_loss, limit) else mean_loss


def _diverged(running_loss: float, limit: float) -> bool:
    return not math.isfinite(running_loss) or running_loss > limit


def _dev_metrics(epoch: int, train_loss: float, model: nn.Module, data: Dataset) -> EpochMetrics:
    s = scores(model, data.dev_x, data.dev_y, data)
    return EpochMetrics(epoch, train_loss, s.loss, s.accuracy, s.rmse, s.r2)


def scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, data: Dataset) -> Scores:
    """``model``'s loss on (x, y) and, for regression, its RMSE in the target's units and
    R^2 (1 - MSE / variance of these targets)."""
    loss, accuracy = evaluate(model, x, y, data.task)
    return scores_of(loss, accuracy, y, data)


def scores_of(loss: float, accuracy: float | None, y: torch.Tensor, data: Dataset) -> Scores:
    """``Scores`` from a split's mean loss and accuracy (None for regression) and its
    targets ``y``."""
    if data.task == "classification":
        return Scores(loss, accuracy, None, None)
    variance = float(y.double().var(unbiased=False)) if y.shape[0] > 0 else 0.0  # standardised
    rmse = math.sqrt(loss) * data.target_std if math.isfinite(loss) else float("nan")
    r2 = 1.0 - loss / variance if variance > 0 else float("nan")
    return Scores(loss, None, rmse, r2)


def _record(result: TrainResult, metrics: EpochMetrics, on_epoch: OnEpoch | None) -> bool:
    """Append ``metrics`` to the curves; True if the callback asks to stop."""
    result.train_loss.append(metrics.train_loss)
    result.dev_loss.append(metrics.dev_loss)
    result.dev_accuracy.append(metrics.dev_accuracy)
    result.dev_rmse.append(metrics.dev_rmse)
    result.history.append(metrics)
    result.final = metrics
    return bool(on_epoch(metrics)) if on_epoch is not None else False


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str
) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) of ``model`` on (x, y), in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for xb, yb in zip(x.split(_EVAL_CHUNK), y.split(_EVAL_CHUNK), strict=True):
        out = model(xb)  # (B, C) logits, or (B, 1) predictions
        if task == "classification":
            loss_sum += F.cross_entropy(out, yb, reduction="sum")
            correct += (out.argmax(dim=1) == yb).sum()  # yb: (B,)
        else:
            loss_sum += F.mse_loss(out, yb, reduction="sum")  # yb: (B, 1)
    model.train(was_training)
    n = x.shape[0]
    accuracy = correct.item() / n if task == "classification" else None
    return loss_sum.item() / n, accuracy
