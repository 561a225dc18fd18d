"""How the REST trial API judges a report, in the same round trip (SQLite and PostgreSQL):
NaN/inf, the divergence rule on the loss metric, then the spec's Optuna pruner on the
objective, whose values reach Optuna's table once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient

from search import store, studies
from search.judging import CompletedTrials
from tests.service.trial_api import api_client, call, claim, report, submit


@pytest.fixture
def client(migrated_url: str) -> Iterator[TestClient]:
    with api_client(migrated_url) as c:
        yield c


def test_a_diverging_loss_is_pruned_at_the_first_report_above_three_times_its_first(
    client: TestClient,
) -> None:
    sid = submit(client)
    trial = claim(client, sid)
    losses = [1.0, 2.0, 2.9, 3.1, 0.5]
    decisions = [report(client, sid, trial, e, train_loss=v).json() for e, v in enumerate(losses)]
    assert [d["decision"] for d in decisions] == ["continue"] * 3 + ["prune", "prune"]
    assert decisions[3]["reason"] == "diverged"
    shown = client.get(f"/api/v1/studies/{sid}/trials/{trial['number']}").json()
    assert shown["state"] == "PRUNED" and shown["prune_reason"] == "diverged"
    assert shown["curves"]["epoch"] == [0, 1, 2, 3]  # the report after the prune changed nothing
    late = call(client, sid, trial, "complete", metrics={"val_auc": 0.9})
    assert late.status_code == 409 and "pruned" in late.json()["detail"]
    assert call(client, sid, trial, "heartbeat").json()["decision"] == "prune"


@pytest.mark.parametrize("bad", [float("nan"), "inf", "-Infinity"])
def test_a_non_finite_loss_or_objective_is_pruned(client: TestClient, bad: Any) -> None:
    sid = submit(client)
    loss_trial, objective_trial = claim(client, sid), claim(client, sid)
    report(client, sid, loss_trial, 0, train_loss=1.0)
    assert report(client, sid, loss_trial, 1, train_loss=bad).json()["decision"] == "prune"
    assert report(client, sid, objective_trial, 0, val_auc=bad).json()["decision"] == "prune"
    # a metric that is neither the loss nor the objective is only stored
    third = claim(client, sid)
    assert report(client, sid, third, 0, grad_norm=bad).json()["decision"] == "continue"


def test_a_named_loss_metric_is_the_one_watched(client: TestClient) -> None:
    sid = submit(client, pruning={"loss_metric": "nll", "divergence_factor": 2.0})
    trial = claim(client, sid)
    assert trial["loss_metric"] == "nll"
    assert report(client, sid, trial, 0, nll=1.0, train_loss=1.0).json()["decision"] == "continue"
    assert report(client, sid, trial, 1, nll=1.5, train_loss=50.0).json()["decision"] == "continue"
    assert report(client, sid, trial, 2, nll=2.5).json()["decision"] == "prune"


def test_the_spec_pruner_judges_the_objective(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The median pruner, on the completed trials as counted in each report's own
    transaction: the judge reads no count of its own."""

    def no_count(self: CompletedTrials) -> int:
        raise AssertionError("a report's judge counted the completed trials on its own")

    monkeypatch.setattr(CompletedTrials, "_count", no_count)
    sid = submit(
        client,
        search__n_trials=5,
        search__parallelism=1,
        pruning={"pruner": "median", "warmup_epochs": 0},
    )
    for good in (0.8, 0.82, 0.84):
        trial = claim(client, sid)
        for epoch in range(3):
            assert report(client, sid, trial, epoch, val_auc=good).json()["decision"] == "continue"
        call(client, sid, trial, "complete", metrics={"val_auc": good})
    weak = claim(client, sid)
    decision = report(client, sid, weak, 0, val_auc=0.1).json()
    assert decision == {"decision": "prune", "reason": "pruned (median)"}
    shown = client.get(f"/api/v1/studies/{sid}/trials/{weak['number']}").json()
    assert shown["state"] == "PRUNED" and shown["value"] == 0.1


def test_a_report_counts_the_completed_trials_only_for_a_value_to_judge(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[int] = []
    count_in = CompletedTrials.count_in

    def counting(self: CompletedTrials, session: Any) -> int:
        counted.append(count_in(self, session))
        return counted[-1]

    monkeypatch.setattr(CompletedTrials, "count_in", counting)
    sid = submit(client, pruning={"pruner": "median", "warmup_epochs": 0})
    trial = claim(client, sid)
    assert report(client, sid, trial, 0, train_loss=1.0).json()["decision"] == "continue"
    assert counted == []  # no objective: nothing for the pruner to judge
    assert report(client, sid, trial, 1, val_auc=0.5).json()["decision"] == "continue"
    assert counted == [0]


@pytest.mark.parametrize("pruner", ["median", "percentile", "successive_halving", "hyperband"])
def test_every_pruner_judges_reports(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, pruner: str
) -> None:
    """Each spec pruner, as the API asks it (median and percentile on its copy of the
    completed trials, the others through Optuna's Trial): strong trials run to the end,
    weak ones are pruned early, by that pruner."""
    # Hyperband puts a trial in a bracket by a hash of the Optuna study's name and the
    # trial's number, and the name is random: with 1 name in 5, too few weak trials share
    # a bracket with a strong one to be pruned. Pinned, the brackets are the same each run.
    pinned = SimpleNamespace(uuid4=lambda: uuid.UUID(int=12345))
    monkeypatch.setattr(studies, "uuid", pinned)
    sid = submit(client, search__n_trials=12, search__parallelism=1, pruning={"pruner": pruner})
    ends: dict[str, list[tuple[int, dict]]] = {"strong": [], "weak": []}
    for i in range(12):
        trial, kind = claim(client, sid), ("strong", "weak")[i % 2]
        auc = 0.9 if kind == "strong" else 0.3
        for epoch in range(10):
            decision = report(client, sid, trial, epoch, val_auc=auc * (1 + 0.01 * epoch)).json()
            if decision["decision"] == "prune":
                break
        else:
            assert call(client, sid, trial, "complete", metrics={"val_auc": auc}).is_success
        ends[kind].append((epoch, decision))
    assert all(d == {"decision": "continue", "reason": None} for _, d in ends["strong"])
    pruned = [epoch for epoch, d in ends["weak"] if d["reason"] == f"pruned ({pruner})"]
    assert len(pruned) >= 3 and min(pruned) < 9, ends["weak"]


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_a_pruners_values_reach_optuna_once(
    client: TestClient, migrated_url: str, pruner: str
) -> None:
    """Each finite objective value reaches Optuna's table once: with its report where the
    pruner reads the running trial there (Hyperband; written in the report's transaction),
    else with the trial's end (the median pruner reads only completed trials). A report
    sent again writes nothing more, and the end adds only what Optuna lacks."""
    sid = submit(client, search__n_trials=1, pruning={"pruner": pruner, "warmup_epochs": 0})
    trial = claim(client, sid)
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        row = store.get_study(session=s, study_id=sid)
        assert row is not None
        name = row.optuna_study_name

    def in_optuna() -> dict[int, float]:
        study = optuna.load_study(study_name=name, storage=migrated_url)
        return dict(study.trials[0].intermediate_values)

    assert report(client, sid, trial, 0, val_auc=0.5).json()["decision"] == "continue"
    assert report(client, sid, trial, 1, train_loss=0.4).json()["decision"] == "continue"
    assert report(client, sid, trial, 2, val_auc=0.7).json()["decision"] == "continue"
    assert report(client, sid, trial, 2, val_auc=0.9).json()["decision"] == "continue"  # again
    assert in_optuna() == ({0: 0.5, 2: 0.7} if pruner == "hyperband" else {})
    call(client, sid, trial, "complete", metrics={"val_auc": 0.7})
    assert in_optuna() == {0: 0.5, 2: 0.7}
