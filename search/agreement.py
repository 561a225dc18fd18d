"""Does Optuna's record agree with hps_trials? (``hpsearch db check``)

Every step of a trial's life commits both sides together (``search.lifecycle``), so they
always agree; this check is how an operator confirms it, and finds the damage a hand edit,
a restore of one side only, or a study written by an older hpsearch left behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from search import optuna_rows
from search.store import T_LOST, T_RUNNING, StudyRow, TrialRow


@dataclass(frozen=True)
class Disagreement:
    study_id: int
    number: int | None
    problem: str

    def __str__(self) -> str:
        where = f"study {self.study_id}"
        if self.number is not None:
            where += f" trial {self.number}"
        return f"{where}: {self.problem}"


def _same(hps_state: str, hps_value: float | None, optuna: tuple[str, float | None]) -> bool:
    state, value = optuna
    if hps_state == T_LOST:  # written by hpsearch < 0.2 while a reaper worked on it
        return state in ("RUNNING", "FAIL")
    if hps_state != state:
        return False
    if state != "COMPLETE":
        return True
    return hps_value is not None and value is not None and math.isclose(hps_value, value)


def check_study(*, session: Session, study: StudyRow, optuna_study_id: int) -> list[Disagreement]:
    rows = session.execute(
        select(TrialRow.number, TrialRow.optuna_trial_id, TrialRow.state, TrialRow.value).where(
            TrialRow.study_id == study.id
        )
    ).all()
    attached = [r.optuna_trial_id for r in rows if r.optuna_trial_id is not None]
    states = optuna_rows.trial_states(session=session, trial_ids=attached)
    found: list[Disagreement] = []
    for r in rows:
        if r.optuna_trial_id is None:
            if r.state in (T_RUNNING, T_LOST):
                continue  # claimed by hpsearch < 0.2, before it asked Optuna
            found.append(Disagreement(study.id, r.number, f"{r.state} with no Optuna trial"))
        elif r.optuna_trial_id not in states:
            found.append(Disagreement(study.id, r.number, "its Optuna trial is missing"))
        elif not _same(r.state, r.value, states[r.optuna_trial_id]):
            o_state, o_value = states[r.optuna_trial_id]
            found.append(
                Disagreement(
                    study.id,
                    r.number,
                    f"hpsearch says {r.state} ({r.value}), Optuna says {o_state} ({o_value})",
                )
            )
    running = {r.optuna_trial_id for r in rows if r.state in (T_RUNNING, T_LOST)}
    for trial_id in optuna_rows.unfinished_trials(session=session, optuna_study_id=optuna_study_id):
        if trial_id not in running:
            found.append(
                Disagreement(
                    study.id, None, f"Optuna trial id {trial_id} is unfinished in Optuna only"
                )
            )
    return found


def check_agreement(*, session: Session) -> list[Disagreement]:
    """Every disagreement between Optuna's trials and hps_trials, study by study."""
    studies = list(session.scalars(select(StudyRow).order_by(StudyRow.id)))
    ids = optuna_rows.study_ids_by_name(
        session=session, names=[s.optuna_study_name for s in studies]
    )
    found: list[Disagreement] = []
    for study in studies:
        if study.optuna_study_name not in ids:
            found.append(Disagreement(study.id, None, "its Optuna study is missing"))
            continue
        found += check_study(
            session=session, study=study, optuna_study_id=ids[study.optuna_study_name]
        )
    return found


__all__ = ["Disagreement", "check_agreement", "check_study"]
