"""Optuna's side of a trial, written in the caller's SQLAlchemy session.

Optuna keeps its studies and trials in the same database as the hps_* tables. Writing its
rows in our own transaction makes each step of a trial's life one atomic commit on both
sides: the claim creates the Optuna trial (with its parameters, for random and grid
search) together with the hps row, and the trial's end writes the outcome, every
intermediate value and the released slot together. No crash can leave Optuna and
hps_trials disagreeing, and the per-trial cost is two transactions instead of Optuna's
one per ``suggest`` and per ``report``.

The rows are written through Optuna's own ORM models (``optuna.storages._rdb.models``,
the schema Optuna's RDBStorage migrates), exactly as RDBStorage writes them: numbering
under the study row lock, values and intermediate values in their stored representation.
So Optuna is pinned to the minor version these writes were checked against
(``OPTUNA_SERIES``, ``optuna~=5.1.0`` in pyproject.toml), and ``check_schema`` refuses to
start on another Optuna, or on a database whose Optuna tables another Optuna migrated
(``SCHEMA_REVISION``): never a silent write into a schema these writes do not know. A
test writes the same trial here and through RDBStorage and compares the rows column by
column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import bindparam, func, insert, inspect, literal, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

REASON_ATTR = "hps_fail_reason"
ROW_ATTR = "hps_trial_row"  # system attribute: the hps_trials row of this attempt
SLOT_ATTR = "hps_slot"
OPTUNA_SERIES = "5.1"  # the Optuna minor version these writes were checked against
SCHEMA_REVISION = "v3.2.0.a"  # its tables' revision (Optuna's alembic_version)
PIN = f"optuna~={OPTUNA_SERIES}.0"


class OptunaSchemaError(RuntimeError):
    """The installed Optuna, or the database's Optuna tables, are not the version whose
    rows this module writes."""


def check_schema(engine: Engine) -> None:
    """Refuse to go on (``OptunaSchemaError``, naming both versions) when the installed
    Optuna is not ``OPTUNA_SERIES``, or the database's Optuna tables are at another revision
    than ``SCHEMA_REVISION``. A database without Optuna's tables yet passes: RDBStorage
    creates them at its (checked) revision."""
    installed = optuna.__version__
    if installed.split(".")[:2] != OPTUNA_SERIES.split("."):
        raise OptunaSchemaError(
            f"optuna {installed} is installed, but hpsearch writes Optuna {OPTUNA_SERIES}'s "
            f"tables (schema {SCHEMA_REVISION}): install {PIN!r}"
        )
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if revision is None or revision == SCHEMA_REVISION:
            return
        by = None
        if inspect(conn).has_table("version_info"):
            by = conn.execute(text("SELECT library_version FROM version_info")).scalar()
    raise OptunaSchemaError(
        f"the database's Optuna tables are at schema {revision} (set up by optuna "
        f"{by or 'unknown'}), but hpsearch writes schema {SCHEMA_REVISION} (optuna "
        f"{installed}): use a database migrated by {PIN!r}, or an hpsearch that writes "
        f"schema {revision}"
    )


_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)


def _utc_now() -> datetime:
    """Now as RDBStorage stores a trial's times: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


# A trial's start and end, built once (bound per call): building one costs about what
# running it does. Numbered in the INSERT itself, from the count under the study's lock;
# ended only while unfinished, the UPDATE locking the row and being the check.
_STUDIES, _TRIALS = models.StudyModel.__table__, models.TrialModel.__table__
_LOCK_STUDY = (
    select(_STUDIES.c.study_id).where(_STUDIES.c.study_id == bindparam("sid")).with_for_update()
)
_COUNT = select(func.count(_TRIALS.c.trial_id)).where(_TRIALS.c.study_id == bindparam("sid"))
_CREATE = (
    insert(_TRIALS)
    .from_select(
        ["number", "study_id", "state", "datetime_start"],
        select(
            _COUNT.scalar_subquery(),
            bindparam("sid"),
            literal(TrialState.RUNNING, _TRIALS.c.state.type),
            bindparam("start", type_=_TRIALS.c.datetime_start.type),
        ),
    )
    .returning(_TRIALS.c.trial_id, _TRIALS.c.number)
)
_END = (
    update(_TRIALS)
    .where(_TRIALS.c.trial_id == bindparam("tid"), _TRIALS.c.state.in_(_UNFINISHED))
    .values(
        state=bindparam("state", type_=_TRIALS.c.state.type),
        datetime_complete=bindparam("done", type_=_TRIALS.c.datetime_complete.type),
    )
    .returning(_TRIALS.c.trial_id)
)
_EXISTS = select(_TRIALS.c.trial_id).where(_TRIALS.c.trial_id == bindparam("tid"))


@dataclass(frozen=True)
class OptunaTrialRef:
    trial_id: int
    number: int


def create_trial(
    *,
    session: Session,
    optuna_study_id: int,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    system_attrs: Mapping[str, Any],
) -> OptunaTrialRef:
    """A RUNNING Optuna trial with ``params`` already set (none for adaptive samplers,
    which suggest afterwards). Its number is taken under the Optuna study's row lock, as
    RDBStorage does."""
    locked = session.execute(_LOCK_STUDY, {"sid": optuna_study_id}).first()
    if locked is None:
        raise KeyError(f"no Optuna study with id {optuna_study_id}")
    created = session.execute(_CREATE, {"sid": optuna_study_id, "start": _utc_now()}).one()
    trial_id = int(created.trial_id)
    if params:
        rows = [
            {
                "trial_id": trial_id,
                "param_name": name,
                "param_value": distributions[name].to_internal_repr(value),
                "distribution_json": distribution_to_json(distributions[name]),
            }
            for name, value in params.items()
        ]
        session.execute(insert(models.TrialParamModel.__table__), rows)
    if system_attrs:
        attrs = [
            {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in system_attrs.items()
        ]
        session.execute(insert(models.TrialSystemAttributeModel.__table__), attrs)
    return OptunaTrialRef(trial_id=trial_id, number=int(created.number))


def finish_trial(
    *,
    session: Session,
    trial_id: int,
    state: TrialState,
    value: float | None,
    new_intermediate_values: Mapping[int, float],
    reason: str | None,
) -> bool:
    """Write a trial's end: ``new_intermediate_values`` (those Optuna does not have yet:
    all of them, unless a pruner had each as it came), the value (not for FAIL), a failure
    reason, and the state. False (and nothing written) if it already finished."""
    ended = session.execute(_END, {"tid": trial_id, "state": state, "done": _utc_now()}).first()
    if ended is None:
        if session.scalar(_EXISTS, {"tid": trial_id}) is None:
            raise KeyError(f"no Optuna trial with id {trial_id}")
        return False
    rows = [_intermediate_row(trial_id, step, v) for step, v in new_intermediate_values.items()]
    if rows:
        session.execute(insert(models.TrialIntermediateValueModel.__table__), rows)
    if state != TrialState.FAIL and value is not None and math.isfinite(value):
        stored_value, value_type = models.TrialValueModel.value_to_stored_repr(value)
        session.execute(
            insert(models.TrialValueModel.__table__).values(
                trial_id=trial_id, objective=0, value=stored_value, value_type=value_type
            )
        )
    if reason:
        _set_system_attr(session, trial_id, REASON_ATTR, reason)
    return True


def add_intermediate_value(*, session: Session, trial_id: int, step: int, value: float) -> None:
    """One intermediate value of a running trial that Optuna does not have yet, as
    ``Trial.report`` stores it (the caller holds the trial's lock: a remote report writes
    it in the transaction that stores the epoch, rather than in one more of Optuna's)."""
    row = _intermediate_row(trial_id, step, value)
    session.execute(insert(models.TrialIntermediateValueModel).values(**row))


def _intermediate_row(trial_id: int, step: int, value: float) -> dict[str, Any]:
    stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
    return {
        "trial_id": trial_id,
        "step": step,
        "intermediate_value": stored,
        "intermediate_value_type": kind,
    }


def _set_system_attr(session: Session, trial_id: int, key: str, value: Any) -> None:
    attr = session.scalars(
        select(models.TrialSystemAttributeModel).where(
            models.TrialSystemAttributeModel.trial_id == trial_id,
            models.TrialSystemAttributeModel.key == key,
        )
    ).one_or_none()
    if attr is None:
        session.add(
            models.TrialSystemAttributeModel(
                trial_id=trial_id, key=key, value_json=json.dumps(value)
            )
        )
    else:
        attr.value_json = json.dumps(value)


def intermediate_steps(*, session: Session, trial_id: int) -> set[int]:
    """The steps of a trial's intermediate values Optuna already has (a read)."""
    model = models.TrialIntermediateValueModel
    return set(session.scalars(select(model.step).where(model.trial_id == trial_id)))


def set_study_user_attrs(
    *, session: Session, optuna_study_id: int, attrs: Mapping[str, Any]
) -> None:
    """Study user attributes (``hps_study_id``, ``hps_study_name``), which optuna-dashboard
    and the optuna CLI show, so a user can tell hpsearch's studies apart."""
    session.add_all(
        models.StudyUserAttributeModel(
            study_id=optuna_study_id, key=key, value_json=json.dumps(value)
        )
        for key, value in attrs.items()
    )


def trial_states(*, session: Session, trial_ids: list[int]) -> dict[int, tuple[str, float | None]]:
    """{trial id: (state name, value)} for the given Optuna trials (a read)."""
    if not trial_ids:
        return {}
    rows = session.execute(
        select(models.TrialModel.trial_id, models.TrialModel.state, models.TrialValueModel.value)
        .outerjoin(
            models.TrialValueModel,
            (models.TrialValueModel.trial_id == models.TrialModel.trial_id)
            & (models.TrialValueModel.objective == 0),
        )
        .where(models.TrialModel.trial_id.in_(trial_ids))
    )
    return {int(r.trial_id): (r.state.name, r.value) for r in rows}


def unfinished_trials(*, session: Session, optuna_study_id: int) -> list[int]:
    """Ids of the study's Optuna trials that are RUNNING or WAITING (a read)."""
    return list(
        session.scalars(
            select(models.TrialModel.trial_id).where(
                models.TrialModel.study_id == optuna_study_id,
                models.TrialModel.state.in_((TrialState.RUNNING, TrialState.WAITING)),
            )
        )
    )


_COUNT_COMPLETE = select(func.count(_TRIALS.c.trial_id)).where(
    _TRIALS.c.study_id == bindparam("sid"),
    _TRIALS.c.state == literal(TrialState.COMPLETE, _TRIALS.c.state.type),
)


def count_complete(*, session: Session, optuna_study_id: int) -> int:
    """How many of the study's Optuna trials are COMPLETE (a read; one indexed count)."""
    return int(session.execute(_COUNT_COMPLETE, {"sid": optuna_study_id}).scalar_one())


def study_ids_by_name(*, session: Session, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    rows = session.execute(
        select(models.StudyModel.study_name, models.StudyModel.study_id).where(
            models.StudyModel.study_name.in_(names)
        )
    )
    return {r.study_name: int(r.study_id) for r in rows}


__all__ = [
    "OPTUNA_SERIES",
    "PIN",
    "REASON_ATTR",
    "SCHEMA_REVISION",
    "OptunaSchemaError",
    "check_schema",
    "count_complete",
    "ROW_ATTR",
    "SLOT_ATTR",
    "OptunaTrialRef",
    "create_trial",
    "finish_trial",
    "add_intermediate_value",
    "intermediate_steps",
    "set_study_user_attrs",
    "study_ids_by_name",
    "trial_states",
    "unfinished_trials",
]
