"""The practitioner's toolbox in the spec: regularisation, batch norm, residual blocks,
lr schedules, clipping and early stopping, fixed in ``training`` or searched; each reaches
the trainer's config, and bad values are refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError

import models
from search import spec as S
from search.size import check_size, mlp_params
from search.slots import slot_params
from search.trial_runner import build_config

TOOLBOX = {
    "l1": 1e-4,
    "batch_norm": True,
    "residual": True,
    "lr_schedule": "step",
    "lr_step_epochs": 3,
    "lr_gamma": 0.3,
    "lr_warmup_epochs": 2,
    "clip_norm": 5.0,
    "patience": 4,
    "min_delta": 1e-3,
    "optimizer": "adamw",
}


def _spec(training: dict[str, Any] | None = None, space: dict[str, Any] | None = None) -> Any:
    return S.ExperimentSpec.model_validate(
        {
            "name": "t",
            "dataset": "iris",
            "search": {"sampler": "random", "seed": 1, "space": space or {}},
            "training": training or {},
        }
    )


def test_fixed_options_reach_the_train_config() -> None:
    config = build_config(_spec(TOOLBOX), {}, slot=0, device="cpu")
    assert {k: getattr(config, k) for k in TOOLBOX} == TOOLBOX
    defaults = build_config(_spec(), {}, slot=0, device="cpu")
    assert (defaults.l1, defaults.batch_norm, defaults.residual) == (0.0, False, False)
    assert (defaults.lr_schedule, defaults.clip_norm, defaults.patience) == ("constant", None, None)


def test_searched_options_reach_the_train_config() -> None:
    space = {
        "l1": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "batch_norm": {"type": "categorical", "choices": [True, False]},
        "residual": {"type": "categorical", "choices": [True]},
        "lr_schedule": {"type": "categorical", "choices": ["cosine", "exponential"]},
        "lr_gamma": {"type": "float", "low": 0.5, "high": 0.99},
        "lr_warmup_epochs": {"type": "int", "low": 0, "high": 3},
        "clip_norm": {"type": "categorical", "choices": [0.5, 1.0]},
        "patience": {"type": "int", "low": 2, "high": 5},
        "optimizer": {"type": "categorical", "choices": ["adamw"]},
    }
    spec = _spec(space=space)
    seen_bn = set()
    for k in range(6):
        knobs = slot_params(spec, k).knobs
        config = build_config(spec, knobs, slot=k, device="cpu")
        assert 1e-6 <= config.l1 <= 1e-2 and config.residual is True
        assert config.lr_schedule in ("cosine", "exponential") and config.optimizer == "adamw"
        assert 0 <= config.lr_warmup_epochs <= 3 and 2 <= config.patience <= 5  # type: ignore[operator]
        assert config.clip_norm in (0.5, 1.0)
        seen_bn.add(config.batch_norm)
    assert seen_bn == {True, False}


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"l1": -0.1}, "l1"),
        ({"l1": 2.0}, "l1"),
        ({"batch_norm": "yes"}, "batch_norm"),
        ({"residual": 1}, "residual"),
        ({"lr_schedule": "linear"}, "lr_schedule"),
        ({"lr_step_epochs": 0}, "lr_step_epochs"),
        ({"lr_gamma": 0}, "lr_gamma"),
        ({"lr_gamma": 1.5}, "lr_gamma"),
        ({"lr_warmup_epochs": -1}, "lr_warmup_epochs"),
        ({"clip_norm": 0}, "clip_norm"),
        ({"patience": 0}, "patience"),
        ({"min_delta": -1}, "min_delta"),
        ({"optimizer": "adagrad"}, "optimizer"),
    ],
)
def test_bad_fixed_option_names_the_field(training: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        _spec(training)
    assert [e["loc"] for e in err.value.errors()] == [("training", field)]


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ({"batch_norm": {"type": "categorical", "choices": [1, 0]}}, "batch_norm must be true"),
        ({"residual": {"type": "float", "low": 0, "high": 1}}, "residual: type 'float'"),
        ({"lr_schedule": {"type": "categorical", "choices": ["linear"]}}, "lr_schedule must be"),
        ({"l1": {"type": "float", "low": 0, "high": 5}}, "l1 must be in"),
        ({"lr_gamma": {"type": "float", "low": 0, "high": 0.9}}, "lr_gamma must be in"),
        ({"patience": {"type": "categorical", "choices": [2.5]}}, "patience: choices must be int"),
        ({"patience": {"type": "int", "low": 0, "high": 3}}, "patience must be in"),
        ({"clip_norm": {"type": "float", "low": 0, "high": 1}}, "clip_norm must be in"),
    ],
)
def test_bad_searched_option_names_the_knob(space: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words) as err:
        _spec(space=space)
    assert err.value.errors()[0]["loc"] == ("search", "space")


@pytest.mark.parametrize("hidden", [[8, 8, 8], [8, 16, 4, 4, 2], [5, 3]])
@pytest.mark.parametrize(("batch_norm", "residual"), [(False, True), (True, False), (True, True)])
def test_parameter_count_matches_the_network(
    hidden: list[int], batch_norm: bool, residual: bool
) -> None:
    net = models.MLP(4, hidden, 3, batch_norm=batch_norm, residual=residual)
    counted = sum(p.numel() for p in net.parameters())
    counted += sum(b.numel() for b in net.buffers() if b.dtype != torch.long)  # running stats
    assert mlp_params(4, hidden, 3, batch_norm=batch_norm, residual=residual) == counted


def test_size_check_counts_options_that_some_trial_can_turn_on() -> None:
    hidden = {"hidden": {"type": "layers", "values": [[64, 32, 16]]}}
    plain = check_size(_spec(space=hidden), 10**9)
    with_residual = check_size(_spec({"residual": True}, hidden), 10**9)
    searched = {"residual": {"type": "categorical", "choices": [False, True]}} | hidden
    assert with_residual == plain + 64 * 16 == check_size(_spec(space=searched), 10**9)
    ranged = {"hidden": {"type": "layers", "depth": [1, 3], "units": [4, 64]}}
    bound = check_size(_spec({"residual": True}, ranged), 10**9)
    widest = models.MLP(4, [64, 64, 63], 3, residual=True)  # a block that must project
    assert bound >= sum(p.numel() for p in widest.parameters())
