"""``search.optuna_rows`` writes Optuna's private tables itself: the rows must be those
RDBStorage writes, and it must refuse an Optuna or a database schema it was not checked
against."""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import Engine, select, text

from search import optuna_rows
from search.optuna_rows import OptunaSchemaError
from search.store import get_engine, make_session_factory, session_scope
from search.studies import _STORAGES, get_storage

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "width": IntDistribution(16, 512, log=True),
    "act": CategoricalDistribution(["relu", "gelu", None]),
}
PARAMS = {"lr": 3e-3, "width": 64, "act": "gelu"}
CURVE = {0: 0.9, 1: 0.5, 2: float("inf"), 3: float("nan"), 4: -0.25}
SYSTEM = {optuna_rows.SLOT_ATTR: 3, optuna_rows.ROW_ATTR: 17}
# Row ids and wall-clock times differ between any two trials; every other column is
# compared. {table: (columns that identify a row, columns left out)}
TABLES = {
    "trials": ("trial_id", ("trial_id", "number", "datetime_start", "datetime_complete")),
    "trial_params": ("trial_id", ("param_id", "trial_id")),
    "trial_values": ("trial_id", ("trial_value_id", "trial_id")),
    "trial_intermediate_values": ("trial_id", ("trial_intermediate_value_id", "trial_id")),
    "trial_system_attributes": ("trial_id", ("trial_system_attribute_id", "trial_id")),
}
ENDINGS = [
    (TrialState.COMPLETE, 0.75, None),
    (TrialState.PRUNED, -0.25, "diverged"),
    (TrialState.FAIL, None, "CUDA out of memory"),
]


def _rows(engine: Engine, table: str, trial_id: int) -> list[dict[str, Any]]:
    key, left_out = TABLES[table]
    columns = models.BaseModel.metadata.tables[table]  # read through the columns' types
    with engine.connect() as conn:
        found = conn.execute(select(columns).where(columns.c[key] == trial_id))
        rows = [dict(r._mapping) for r in found]
    for row in rows:
        for column in left_out:
            if column.startswith("datetime_"):
                assert row[column] is None or isinstance(row[column], datetime), row
                row[column] = row[column] is not None  # set or not: compared
            else:
                row.pop(column)
    return sorted(rows, key=repr)


def _through_storage(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    state: TrialState,
    value: float | None,
    reason: str | None,
) -> int:
    """The trial as an Optuna user's study writes it through RDBStorage."""
    trial_id = storage.create_new_trial(study_id)
    for name, param in PARAMS.items():
        dist = DISTRIBUTIONS[name]
        storage.set_trial_param(trial_id, name, dist.to_internal_repr(param), dist)
    for key, attr in SYSTEM.items():
        storage.set_trial_system_attr(trial_id, key, attr)
    for step, v in CURVE.items():
        storage.set_trial_intermediate_value(trial_id, step, v)
    if reason:
        storage.set_trial_system_attr(trial_id, optuna_rows.REASON_ATTR, reason)
    storage.set_trial_state_values(trial_id, state, None if value is None else [value])
    return trial_id


def _through_rows(
    url: str, study_id: int, state: TrialState, value: float | None, reason: str | None
) -> int:
    sessions = make_session_factory(url)
    with session_scope(sessions) as session:
        ref = optuna_rows.create_trial(
            session=session,
            optuna_study_id=study_id,
            params=PARAMS,
            distributions=DISTRIBUTIONS,
            system_attrs=SYSTEM,
        )
    with session_scope(sessions) as session:
        finished = optuna_rows.finish_trial(
            session=session,
            trial_id=ref.trial_id,
            state=state,
            value=value,
            new_intermediate_values=CURVE,
            reason=reason,
        )
    assert finished
    return ref.trial_id


@pytest.mark.parametrize(("state", "value", "reason"), ENDINGS, ids=lambda e: str(e))
def test_the_same_trial_written_here_and_by_rdbstorage_has_the_same_rows(
    migrated_url: str, state: TrialState, value: float | None, reason: str | None
) -> None:
    storage = get_storage(migrated_url)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "rows")
    theirs = _through_storage(storage, study_id, state, value, reason)
    ours = _through_rows(migrated_url, study_id, state, value, reason)
    engine = get_engine(migrated_url)
    for table in TABLES:
        expected = _rows(engine, table, theirs)
        if not (table == "trial_values" and state == TrialState.FAIL):
            assert expected, f"RDBStorage wrote nothing to {table}"
        assert _rows(engine, table, ours) == expected, table
    # and Optuna reads both back as the same trial
    a, b = (storage.get_trial(t) for t in (theirs, ours))
    for field in ("state", "params", "distributions", "values", "system_attrs"):
        assert getattr(a, field) == getattr(b, field), field
    assert list(a.intermediate_values) == list(b.intermediate_values)
    for step, v in a.intermediate_values.items():
        w = b.intermediate_values[step]
        assert v == w or (math.isnan(v) and math.isnan(w)), step


def test_study_user_attributes_are_those_rdbstorage_writes(migrated_url: str) -> None:
    storage = get_storage(migrated_url)
    attrs = {"hps_study_id": 7, "hps_study_name": "café"}
    theirs = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "theirs")
    ours = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "ours")
    for key, value in attrs.items():
        storage.set_study_user_attr(theirs, key, value)
    with session_scope(make_session_factory(migrated_url)) as session:
        optuna_rows.set_study_user_attrs(session=session, optuna_study_id=ours, attrs=attrs)

    def rows(study_id: int) -> list[tuple[Any, ...]]:
        with get_engine(migrated_url).connect() as conn:
            sql = "SELECT key, value_json FROM study_user_attributes WHERE study_id = :id"
            return sorted(tuple(r) for r in conn.execute(text(sql), {"id": study_id}))

    assert rows(ours) == rows(theirs) and len(rows(ours)) == 2


def test_pyproject_pins_the_optuna_these_rows_were_checked_against() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert optuna_rows.PIN in project["project"]["dependencies"]
    assert optuna.__version__.startswith(optuna_rows.OPTUNA_SERIES + ".")


def test_installed_optuna_creates_the_schema_revision_written_here(migrated_url: str) -> None:
    storage = get_storage(migrated_url)
    assert storage.get_head_version() == optuna_rows.SCHEMA_REVISION
    assert storage.get_current_version() == optuna_rows.SCHEMA_REVISION


def _migrated_by_a_newer_optuna(url: str) -> None:
    _STORAGES.pop(url, None)
    with get_engine(url).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'v6.0.0.a'"))
        conn.execute(text("UPDATE version_info SET library_version = '6.0.0'"))


def test_a_database_migrated_by_another_optuna_is_refused_naming_both(migrated_url: str) -> None:
    _migrated_by_a_newer_optuna(migrated_url)
    with pytest.raises(OptunaSchemaError) as refused:
        get_storage(migrated_url)
    message = str(refused.value)
    for named in ("v6.0.0.a", "6.0.0", optuna_rows.SCHEMA_REVISION, optuna.__version__):
        assert named in message
    assert migrated_url not in _STORAGES
    with get_engine(migrated_url).connect() as conn:  # nothing was written
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "v6.0.0.a"


def test_another_installed_optuna_is_refused_before_the_database_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(optuna, "__version__", "5.2.0")

    class NoDatabase:
        def connect(self) -> None:
            raise AssertionError("the database was read")

    with pytest.raises(OptunaSchemaError, match=r"optuna 5\.2\.0 is installed.*optuna~=5\.1\.0"):
        optuna_rows.check_schema(NoDatabase())  # type: ignore[arg-type]


def test_the_cli_says_so_in_one_line(sqlite_url: str) -> None:
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    _migrated_by_a_newer_optuna(sqlite_url)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "upgrade", "--db", sqlite_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the database's Optuna tables"), lines
    assert "v6.0.0.a" in lines[0] and "Traceback" not in done.stderr
