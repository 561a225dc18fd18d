"""The store's reads of trials trained together (``search/store/_stacks.py``) on SQLite
and PostgreSQL: whether a study has stacks, a stack's trials, and a study's version
changing when a running trial's stack is written."""

from __future__ import annotations

from sqlalchemy import update

from search import store
from tests.study_data import Made, make_study, params


def _set_stack(factory: object, study_id: int, numbers: list[int], stack: int) -> None:
    with store.session_scope(factory) as s:
        s.execute(
            update(store.TrialRow)
            .where(store.TrialRow.study_id == study_id, store.TrialRow.number.in_(numbers))
            .values(stack=stack)
        )


def _version(factory: object, study_id: int) -> str:
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=study_id)
        assert row is not None
        return store.study_version(session=s, study=row, waiting=False)


def test_stacks_of_a_study(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    trials = [Made("COMPLETE", 0.3, params(0.01)), Made("PRUNED", 4.0, params(0.5))]
    sid = make_study(factory, trials * 2, running=2)  # trials 4 and 5 still run
    other = make_study(factory, trials)
    with store.session_scope(factory) as s:
        assert not store.study_has_stacks(session=s, study_id=sid)
        assert store.stack_trials(session=s, study_id=sid, stack=0) == []
    _set_stack(factory, sid, [0, 1, 3], 0)
    _set_stack(factory, other, [0, 1], 0)  # another study's stack 0 is not this one's
    before = _version(factory, sid)
    _set_stack(factory, sid, [4, 5], 4)  # running: only the version can tell
    assert _version(factory, sid) != before
    with store.session_scope(factory) as s:
        assert store.study_has_stacks(session=s, study_id=sid)
        assert store.stack_trials(session=s, study_id=sid, stack=0) == [0, 1, 3]
        assert store.stack_trials(session=s, study_id=sid, stack=4) == [4, 5]
        assert store.stack_trials(session=s, study_id=sid, stack=2) == []
