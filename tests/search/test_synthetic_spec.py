"""Specs of the synthetic model: its placeholder dataset, its own settings, and the 4xx
answers that name the field when a spec mixes it with real data or a real model."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from search.datasets import DatasetError, dataset_name
from search.gradcheck import check_spec
from search.size import check_size, largest_network
from search.spec import ExperimentSpec
from service.app import create_app
from service.settings import Settings

SYNTHETIC: dict[str, Any] = {
    "name": "smoke",
    "model": "synthetic",
    "search": {"n_trials": 2},
    "training": {"epochs": 3, "seconds_per_epoch": 0.5, "noise": 0.1},
}


def test_a_synthetic_spec_needs_no_dataset_and_round_trips() -> None:
    spec = ExperimentSpec.model_validate(SYNTHETIC)
    assert (spec.dataset.name, spec.dataset.id, spec.dataset.builtin) == ("synthetic", None, True)
    assert spec.dataset.task == "regression" and spec.objective.metric == "dev_loss"
    assert (spec.training.seconds_per_epoch, spec.training.noise) == (0.5, 0.1)
    again = ExperimentSpec.model_validate(spec.model_dump(mode="json"))  # as a worker reads it
    assert again == spec
    named = ExperimentSpec.model_validate(SYNTHETIC | {"dataset": "synthetic"})
    assert named.dataset == spec.dataset
    # A stored MLP spec carries the synthetic settings' defaults and still validates.
    mlp = ExperimentSpec.model_validate({"name": "m", "dataset": "iris"})
    assert ExperimentSpec.model_validate(mlp.model_dump(mode="json")) == mlp


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"dataset": "iris"}, "dataset: model synthetic trains on no data"),
        ({"dataset": {"name": "synthetic", "id": 3}}, "built-in dataset; it has no id"),
        ({"dataset": 4}, "dataset: model synthetic trains on no data"),
        ({"objective": {"metric": "dev_accuracy"}}, "objective.metric: model synthetic"),
        ({"objective": {"metric": "dev_rmse"}}, "objective.metric: model synthetic"),
        ({"search": {"space": {"conv_channels": {"type": "layers", "values": [[8]]}}}}, "cnn"),
    ],
)
def test_the_synthetic_model_refuses_real_data_and_metrics(
    change: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        ExperimentSpec.model_validate(SYNTHETIC | change)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"dataset": "synthetic"}, "dataset: synthetic stands for no data"),
        ({"dataset": "iris", "training": {"seconds_per_epoch": 1}}, "training.seconds_per_epoch"),
        ({"dataset": "digits", "model": "cnn", "training": {"noise": 0.1}}, "training.noise"),
    ],
)
def test_real_models_refuse_the_synthetic_settings(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ExperimentSpec.model_validate({"name": "m"} | spec)


def test_an_upload_cannot_take_the_placeholder_name() -> None:
    with pytest.raises(DatasetError, match="built-in"):
        dataset_name("synthetic", "x.csv")


def test_the_synthetic_model_has_no_network() -> None:
    spec = ExperimentSpec.model_validate(SYNTHETIC)
    assert largest_network(spec) == ("model", 0) and check_size(spec, 1) == 0
    with pytest.raises(ValueError, match="synthetic has no network"):
        check_spec(spec, 1)


@pytest.mark.parametrize(
    ("training", "loc"),
    [
        ({"seconds_per_epoch": -1}, ["body", "training", "seconds_per_epoch"]),
        ({"seconds_per_epoch": 3601}, ["body", "training", "seconds_per_epoch"]),
        ({"seconds_per_epoch": "soon"}, ["body", "training", "seconds_per_epoch"]),
        ({"noise": 2}, ["body", "training", "noise"]),
    ],
)
def test_the_api_answers_bad_settings_with_422_naming_the_field(
    migrated_url: str, training: dict[str, Any], loc: list[str]
) -> None:
    spec = SYNTHETIC | {"training": SYNTHETIC["training"] | training}
    with TestClient(create_app(Settings(database_url=migrated_url), recover=False)) as client:
        r = client.post("/api/v1/studies", json=spec)
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["detail"]] == [loc]
        r = client.post("/api/v1/studies", json=SYNTHETIC | {"dataset": "iris"})
        assert r.status_code == 422 and "dataset: model synthetic" in r.text
        r = client.post("/api/v1/studies", json=SYNTHETIC)
        assert r.status_code == 201, r.text
        assert r.json()["spec"]["dataset"]["name"] == "synthetic"
