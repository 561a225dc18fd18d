"""Optuna glue: storage, study creation, and the context a worker runs a study with. The
API and the workers both use it; it never trains.

Submitting a study is two short transactions whatever its size: Optuna's study, then the
hps row together with the Optuna study's user attributes (``hps_study_id``,
``hps_study_name``: optuna-dashboard and the optuna CLI show them). Grid points are not
enqueued: slot k runs the k-th point (``search.slots``). A submission carrying a
``request_key`` that was already used returns the study created then, so a client that
retries after a timeout never gets a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid

import optuna
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from search import optuna_rows
from search.size import check_budget, check_size
from search.spec import (
    DATASET_TASKS,
    EXTERNAL_TASK,
    ExperimentSpec,
    check_image_fits,
    check_objective_fits,
)
from search.store import (
    ALL_OWNERS,
    StudyRow,
    engine_kwargs,
    get_dataset,
    get_dataset_by_name,
    get_engine,
    get_study,
    harden_sqlite,
    insert_study,
    lock_dataset,
    normalize_url,
    session_scope,
    shared_pool,
    with_retry,
)

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


class RequestKeyReused(ValueError):
    """A request key already names a study with a different spec."""


class UnknownDataset(ValueError):
    """The spec names no built-in or uploaded dataset, its objective needs the other task,
    or it asks for a CNN or augmentation on a table; ``field`` is where in the spec."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def resolve_dataset(
    *, session: Session, spec: ExperimentSpec, owner: str | None | object = ALL_OWNERS
) -> tuple[ExperimentSpec, str, tuple[int, int] | None]:
    """The spec with an uploaded dataset named by both id and name, the study's task and
    an uploaded dataset's (inputs, outputs) at most. Raises ``UnknownDataset`` when there
    is no such dataset among ``owner``'s (``ALL_OWNERS``: anyone's; another user's is
    answered like a missing one) or the objective does not fit its task. A study of the
    user's own code (model external) has no dataset: its task is ``external``."""
    if spec.external:
        return spec, EXTERNAL_TASK, None
    ds = spec.data
    if ds.builtin:
        assert ds.task is not None
        return spec, ds.task, None
    if ds.id is not None:
        row = get_dataset(session=session, dataset_id=ds.id)
        if row is not None and owner is not ALL_OWNERS and row.owner != owner:
            row = None
    else:
        row = get_dataset_by_name(session=session, name=ds.name or "", owner=owner)
    if row is None or (ds.id is not None and ds.name is not None and ds.name != row.name):
        builtins = ", ".join(sorted(DATASET_TASKS))
        what = (
            f"no uploaded dataset with id {ds.id}"
            if ds.id is not None
            else (f"no built-in or uploaded dataset named {ds.name!r}")
        )
        if ds.id is not None and row is not None:
            what = f"dataset {ds.id} is named {row.name!r}, not {ds.name!r}"
        raise UnknownDataset(
            "dataset",
            f"{what}; built-in datasets are {builtins}; `hpsearch datasets list` shows "
            "the uploaded ones",
        )
    try:
        check_objective_fits(spec.objective.metric, row.task, repr(row.name))
    except ValueError as exc:
        raise UnknownDataset("objective.metric", str(exc)) from None
    problem = check_image_fits(spec, None)  # an uploaded dataset is a table, never images
    if problem is not None:
        raise UnknownDataset(problem[0], f"{problem[0]}: {problem[1]}")
    data = spec.model_dump(mode="json")
    data["dataset"] |= {"id": row.id, "name": row.name}
    n_in, n_out = row.summary["shape"]
    return ExperimentSpec.model_validate(data), row.task, (int(n_in), int(n_out))


def get_storage(url: str) -> optuna.storages.RDBStorage:
    """One Optuna RDBStorage per URL per process (creates Optuna's tables if missing),
    once the installed Optuna and the database's Optuna tables are checked to be the
    version ``optuna_rows`` writes (``OptunaSchemaError`` otherwise)."""
    url = normalize_url(url)
    if url not in _STORAGES:
        with_retry(lambda: optuna_rows.check_schema(get_engine(url)))
        storage = _created_storage(url)
        harden_sqlite(storage.engine)
        _STORAGES[url] = storage
    return _STORAGES[url]


def _created_storage(url: str, attempts: int = 3) -> optuna.storages.RDBStorage:
    """``_rdb_storage``, again when another process (``serve`` migrating, a worker
    starting beside it) created Optuna's tables at the same moment: one of the two then
    fails on "table ... already exists" or on alembic_version's key, and the tables exist."""
    for attempt in range(1, attempts + 1):
        try:
            return with_retry(lambda: _rdb_storage(url))
        except (IntegrityError, OperationalError) as exc:
            lost_race = isinstance(exc, IntegrityError) or "already exists" in str(exc)
            if not lost_race or attempt == attempts:
                raise
            time.sleep(random.uniform(0.1, 0.5))  # so the racers do not meet again
    raise AssertionError("unreachable")


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage on ``url``: with an engine of its own, or (a worker on PostgreSQL,
    ``search.store.limit_connections``) one drawing from the hps_* engine's pool, so the
    process holds no more connections than that pool. Its idle connections are closed
    first: SQLAlchemy sets up a new engine's dialect on the first connection it opens."""
    pool = shared_pool(url)
    if pool is None:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url))
    pool.dispose()
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool": pool})


def create_study(
    *,
    session_factory: sessionmaker[Session],
    storage_url: str,
    spec: ExperimentSpec,
    request_key: str | None = None,
    max_params: int | None = None,
    max_trials: int | None = None,
    max_epochs: int | None = None,
    owner: str | None = None,
    datasets_of: str | None | object = ALL_OWNERS,
) -> StudyRow:
    """Create the Optuna study, then the hps row (so workers never see a study whose
    Optuna side is missing); if the hps row cannot be written the Optuna study is deleted
    again. Raises ``search.size.SpecTooLarge`` when a configuration exceeds
    ``max_params``, ``max_trials`` or ``max_epochs``, ``UnknownDataset`` when the dataset
    does not exist or does not fit the objective, and ``RequestKeyReused`` when
    ``request_key`` names another spec of the same ``owner`` (request keys of different
    owners never meet)."""
    with session_scope(session_factory) as session:
        spec, task, shape = resolve_dataset(session=session, spec=spec, owner=datasets_of)
    if max_params is not None:
        check_size(spec, max_params, shape)
    check_budget(spec, trials_cap=max_trials, epochs_cap=max_epochs)
    data = spec.model_dump(mode="json")
    shown_key = request_key
    if request_key is not None and owner is not None:
        request_key = hashlib.sha256(f"{owner}\0{request_key}".encode()).hexdigest()
    if request_key is not None:
        existing = _by_request_key(session_factory, request_key, data, shown_key)
        if existing is not None:
            return existing
    storage = get_storage(storage_url)
    optuna_name = f"hps-{uuid.uuid4().hex}"
    study = with_retry(
        lambda: optuna.create_study(
            study_name=optuna_name, storage=storage, direction=spec.objective.direction
        )
    )

    def write() -> StudyRow:
        with session_scope(session_factory) as session:
            return _insert(session, spec, task, optuna_name, study._study_id, request_key, owner)

    try:
        return with_retry(write)
    except IntegrityError:
        optuna.delete_study(study_name=optuna_name, storage=storage)
        existing = _by_request_key(session_factory, request_key or "", data, shown_key)
        if existing is None:
            raise
        return existing  # a concurrent retry of the same request won
    except BaseException:
        optuna.delete_study(study_name=optuna_name, storage=storage)
        raise


def _insert(
    session: Session,
    spec: ExperimentSpec,
    task: str,
    optuna_name: str,
    optuna_study_id: int,
    request_key: str | None,
    owner: str | None,
) -> StudyRow:
    """The hps row, and the Optuna study's user attributes naming it (one transaction).
    An uploaded dataset's row is locked first: it cannot be deleted meanwhile."""
    dataset_id = None if spec.dataset is None else spec.dataset.id
    if dataset_id is not None and lock_dataset(session=session, dataset_id=dataset_id) is None:
        raise UnknownDataset("dataset", f"dataset {dataset_id} was deleted meanwhile")
    row = insert_study(
        session=session,
        spec=spec.model_dump(mode="json"),
        optuna_study_name=optuna_name,
        n_trials=spec.search.n_trials,
        owner=owner,
    )
    row.request_key = request_key
    row.task = task
    row.dataset_id = dataset_id
    session.flush()
    optuna_rows.set_study_user_attrs(
        session=session,
        optuna_study_id=optuna_study_id,
        attrs={"hps_study_id": row.id, "hps_study_name": row.name},
    )
    return row


def _by_request_key(
    session_factory: sessionmaker[Session],
    key: str,
    data: dict[str, object],
    shown_key: str | None,
) -> StudyRow | None:
    with session_scope(session_factory) as session:
        row = session.scalars(select(StudyRow).where(StudyRow.request_key == key)).one_or_none()
    if row is not None and row.spec != data:
        raise RequestKeyReused(f"request key {shown_key!r} was already used for another spec")
    return row


def load_study_context(
    *, session_factory: sessionmaker[Session], storage_url: str, study_id: int
) -> tuple[StudyRow, int]:
    """A study's hps row and its Optuna study id."""
    with session_scope(session_factory) as session:
        row = get_study(session=session, study_id=study_id)
        if row is None:
            raise LookupError(f"study {study_id} not found")
        ids = optuna_rows.study_ids_by_name(session=session, names=[row.optuna_study_name])
    if row.optuna_study_name not in ids:
        raise LookupError(f"study {study_id}: Optuna study {row.optuna_study_name} is missing")
    return row, ids[row.optuna_study_name]


__all__ = [
    "RequestKeyReused",
    "UnknownDataset",
    "create_study",
    "get_storage",
    "load_study_context",
    "resolve_dataset",
]
