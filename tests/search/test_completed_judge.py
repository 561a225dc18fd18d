"""A median or percentile pruner judged on the caller's values and the process's copy of
the completed trials (``CompletedJudge``, which reads nothing of the running trial from
Optuna's tables) decides exactly as Optuna's own ``Trial.should_prune`` on the same
database, as trials complete between the judged epochs (SQLite and PostgreSQL)."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.trial import TrialState

from search import store
from search.judging import CompletedJudge, CompletedTrials
from search.pruners import DivergencePruner, make_pruner
from search.spec import ExperimentSpec
from search.studies import get_storage

EPOCHS = 8


def _spec(pruner: str, direction: str, warmup: int) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "judged",
            "model": "external",
            "objective": {"metric": "score", "direction": direction},
            "search": {"space": {"x": {"type": "float", "low": 0, "high": 1}}},
            "pruning": {"pruner": pruner, "warmup_epochs": warmup},
        }
    )


def _curve(rng: random.Random, direction: str) -> list[float]:
    """A noisy curve that improves with the epochs, at a random level."""
    level, sign = rng.uniform(0.2, 2.0), (1 if direction == "minimize" else -1)
    return [sign * level / (1 + 0.3 * e) + rng.gauss(0, 0.05) for e in range(EPOCHS)]


def _complete(study: optuna.Study, curve: list[float]) -> None:
    trial = study.ask()
    for step, value in enumerate(curve):
        trial.report(value, step)
    study.tell(trial, curve[-1])


@pytest.mark.parametrize(
    ("pruner", "direction", "warmup"),
    [("median", "minimize", 0), ("median", "maximize", 2), ("percentile", "minimize", 1)],
)
def test_decides_as_optunas_own_pruner_while_trials_complete(
    migrated_url: str, pruner: str, direction: str, warmup: int
) -> None:
    spec = _spec(pruner, direction, warmup)
    optuna_pruner = make_pruner(spec.pruning, epochs=EPOCHS)
    # One Study for the judge (its cache is the one the API keeps), another read afresh
    # for Optuna's own decision.
    ours = optuna.create_study(
        study_name="judged", storage=get_storage(migrated_url), direction=direction
    )
    completed = CompletedTrials(ours, ours._study_id, store.make_session_factory(migrated_url))
    rng = random.Random(f"{pruner}-{direction}")
    decisions: list[tuple[bool, bool]] = []
    for judged in range(12):
        trial = ours.ask()
        tid, progress = trial._trial_id, _Progress()
        judge = CompletedJudge(optuna_pruner, completed, trial.number, tid, progress, spec)
        for step, value in enumerate(_curve(rng, direction)):
            if judged > 0 and step == 3:  # another trial completes mid-judging
                _complete(ours, _curve(rng, direction))
            progress.reported[step] = value
            our_reason = judge(step, value)
            # Optuna's own way: the value in its table, the running trial read back from it
            get_storage(migrated_url).set_trial_intermediate_value(tid, step, value)
            theirs = optuna.load_study(
                study_name="judged", storage=migrated_url, pruner=optuna_pruner
            )
            their_prune = optuna.Trial(theirs, tid).should_prune()
            decisions.append((our_reason is not None, their_prune))
            if their_prune:
                break
        if decisions[-1][1]:
            ours.tell(trial, state=TrialState.PRUNED)
        else:
            ours.tell(trial, value)
    assert [ours_ for ours_, _ in decisions] == [theirs_ for _, theirs_ in decisions]
    pruned = sum(theirs_ for _, theirs_ in decisions)
    assert 0 < pruned < 12, decisions  # the comparison covered both answers


def test_only_the_completed_trials_are_asked_for(migrated_url: str) -> None:
    """The pruners it serves read the study's COMPLETE trials and nothing else: asked for
    any other set, the view refuses rather than answer wrongly."""
    study = optuna.create_study(study_name="view", storage=get_storage(migrated_url))
    completed = CompletedTrials(study, study._study_id, store.make_session_factory(migrated_url))
    assert completed.get() == []
    _complete(study, [1.0, 0.5])
    assert [t.number for t in completed.get()] == [0]

    class ReadsRunning(DivergencePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            return False

    spec = _spec("median", "minimize", 0)
    trial = study.ask()
    progress = _Progress()
    progress.reported[0] = 1.0
    judge = CompletedJudge(ReadsRunning(), completed, trial.number, trial._trial_id, progress, spec)
    with pytest.raises(ValueError, match="only the study's completed trials"):
        judge(0, 1.0)


class _Progress:
    def __init__(self) -> None:
        self.reported: dict[int, float] = {}
        self.in_optuna: set[int] = set()
