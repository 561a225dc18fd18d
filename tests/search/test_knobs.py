"""``search.knobs`` is the one table of training knobs: the spec's training block, what
``search.space`` may search, the trainer's ``TrainConfig`` and the CNN/image/synthetic
rules are derived from it. These tests prove the derived pieces agree with the table, row
by row, so a knob added to the table reaches every one of them or fails here."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

import models
from search import knobs as K
from search import spec as S
from search._conv import BLOCK_KNOBS, ConvBlockSpec
from search.trial_runner import build_config

TRAINING_ROWS = [K.KNOB[name] for name in K.TRAINING]
NUMBERS = [k for k in TRAINING_ROWS if k.kind in ("float", "int")]
CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(models.TrainConfig)}


def _spec(training: dict[str, Any], space: dict[str, Any] | None = None, **top: Any) -> Any:
    return S.ExperimentSpec.model_validate(
        {
            "name": "t",
            "dataset": top.pop("dataset", "iris"),
            "search": {"sampler": "random", "n_trials": 2, "space": space or {}},
            "training": training,
            **top,
        }
    )


def test_the_training_block_is_the_table() -> None:
    assert set(S.TrainingSpec.model_fields) == {*K.TRAINING, "conv"}
    schema = S.TrainingSpec.model_json_schema()["properties"]
    for knob in TRAINING_ROWS:
        field = S.TrainingSpec.model_fields[knob.name]
        default = field.get_default(call_default_factory=True)
        expected = list(knob.default) if knob.kind == "layers" else knob.default
        assert default == expected, knob.name
        prop = schema[knob.name]
        if knob.kind == "choice":
            assert tuple(prop["enum"]) == knob.choices, knob.name
        if knob.kind in ("float", "int"):
            bounds = prop["anyOf"][0] if knob.optional else prop
            low = "exclusiveMinimum" if knob.low_open else "minimum"
            assert (bounds[low], bounds["maximum"]) == (knob.low, knob.high), knob.name


def test_the_trainer_config_is_the_table() -> None:
    assert set(K.TRAINING) <= set(CONFIG_FIELDS)
    config = models.TrainConfig()
    for knob in TRAINING_ROWS:
        expected = tuple(knob.default) if knob.kind == "layers" else knob.default
        assert getattr(config, knob.name) == expected, knob.name


@pytest.mark.parametrize("knob", NUMBERS, ids=lambda k: k.name)
def test_a_number_outside_its_bounds_is_refused_by_the_spec_and_the_trainer(knob: K.Knob) -> None:
    assert knob.low is not None and knob.high is not None
    low = knob.low if not knob.low_open else knob.low + (1 if knob.kind == "int" else 1e-9)
    below = knob.low - 1 if knob.kind == "int" or not knob.low_open else knob.low
    above = knob.high + 1
    for good in (low, knob.high):
        value = int(good) if knob.kind == "int" else good
        S.TrainingSpec.model_validate({knob.name: value})
        models.TrainConfig(**{knob.name: value})
    for bad in (below, above):
        value = int(bad) if knob.kind == "int" else bad
        with pytest.raises(ValidationError):
            S.TrainingSpec.model_validate({knob.name: value})
        with pytest.raises(ValueError, match=knob.name):
            models.TrainConfig(**{knob.name: value})


@pytest.mark.parametrize("knob", [k for k in K.TABLE if k.search], ids=lambda k: k.name)
def test_search_space_takes_what_the_table_says(knob: K.Knob) -> None:
    assert S.KNOBS[knob.name] == knob.search
    param: dict[str, Any]
    if knob.kind == "layers":
        param = {"type": "layers", "values": [[8, 4]]}
    elif knob.kind in ("float", "int"):
        param = {"type": knob.kind, "low": knob.high + 1, "high": knob.high + 2}
    else:
        param = {"type": "categorical", "choices": ["not-a-choice"]}
    model = "cnn" if knob.name in K.CNN_KNOBS else "mlp"
    data = "digits"  # an image dataset: CNN and augmentation knobs apply
    if knob.kind == "layers":
        _spec({}, {knob.name: param}, dataset=data, model=model)  # a legal value
    else:
        with pytest.raises(ValidationError, match=knob.name):
            _spec({}, {knob.name: param}, dataset=data, model=model)
    assert set(S.KNOBS) == {k.name for k in K.TABLE if k.search}


def test_the_models_and_datasets_a_knob_applies_to() -> None:
    assert set(K.CNN_KNOBS) == {"conv_channels", *BLOCK_KNOBS, "conv_head"}
    for name in K.CNN_KNOBS:  # a CNN setting on an MLP is refused, naming it
        param = K.KNOB[name].search[0]
        space = {name: {"type": param, "values": [[8]]}} if param == "layers" else {}
        if not space:
            knob = K.KNOB[name]
            choice = knob.choices[0] if knob.choices else knob.high
            space = {name: {"type": "categorical", "choices": [choice]}}
        with pytest.raises(ValidationError, match=name):
            _spec({}, space, dataset="digits", model="mlp")
    for name in K.AUGMENT_KNOBS:  # augmentation on a table is refused
        high = K.KNOB[name].high
        with pytest.raises(ValidationError, match=name):
            _spec({name: int(high) if K.KNOB[name].kind == "int" else high}, dataset="iris")
    for name in K.SYNTHETIC_KNOBS:  # the synthetic model's settings, on a real one
        with pytest.raises(ValidationError, match=name):
            _spec({name: 0.5}, dataset="iris")


def test_every_training_knob_reaches_the_trainer() -> None:
    chosen: dict[str, Any] = {}
    for knob in TRAINING_ROWS:
        if knob.models == ("synthetic",) or knob.images or knob.models == ("cnn",):
            continue  # each needs its own model or data: covered by their own tests
        if knob.kind == "bool":
            chosen[knob.name] = not knob.default
        elif knob.kind == "choice":
            chosen[knob.name] = next(c for c in knob.choices if c != knob.default)
        elif knob.kind == "layers":
            chosen[knob.name] = [7, 5]
        else:
            assert knob.high is not None
            value = knob.high / 2 if knob.kind == "float" else int(knob.high // 2)
            chosen[knob.name] = value
    config = build_config(_spec(chosen), {}, slot=0, device="cpu")
    for name, value in chosen.items():
        expected = tuple(value) if isinstance(value, list) else value
        assert getattr(config, name) == expected, name
    searched = build_config(_spec({}), {"lr": 0.25, "keep_prob": 0.5}, slot=0, device="cpu")
    assert (searched.lr, searched.keep_prob) == (0.25, 0.5)


def test_the_cnn_blocks_take_the_block_knobs_rows() -> None:
    schema = ConvBlockSpec.model_json_schema()["properties"]
    for knob_name, field in BLOCK_KNOBS.items():
        knob = K.KNOB[knob_name]
        assert ConvBlockSpec.model_fields[field].default == knob.default, knob_name
        if knob.kind == "int":
            assert (schema[field]["minimum"], schema[field]["maximum"]) == (knob.low, knob.high)
        if knob.kind == "choice":
            assert tuple(schema[field]["enum"]) == knob.choices
