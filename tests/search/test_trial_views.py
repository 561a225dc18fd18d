"""Leaderboard views on a real database (SQLite and PostgreSQL): filters, ranks, every
sort order, top N, paging, the change cursor, and the compact plot reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from search import store
from tests.study_data import Made, end_trial, make_study, params

# Trials 0..7 end in this order; value = dev_loss (minimised).
TRIALS = [
    Made("COMPLETE", 0.50, params(0.01, 0.9, [64])),
    Made("PRUNED", 3.20, params(0.9, 0.6, [16]), reason="diverged", epochs=1),
    Made("COMPLETE", 0.20, params(0.003, 0.7, [128, 64])),
    Made("FAIL", None, params(0.02, 0.8, [32]), reason="error: boom", epochs=0),
    Made("COMPLETE", 0.35, params(0.0002, 1.0, [16, 16])),
    Made("PRUNED", 1.10, params(0.05, 0.5, [200]), reason="pruned (median)", epochs=2),
    Made("COMPLETE", 0.20, params(0.004, 0.55, [32])),  # ties trial 2: ranks after it
    Made("COMPLETE", 0.90, params(0.1, 0.95, [256, 128])),
]


@pytest.fixture(scope="module")
def study_id(module_migrated_url: str) -> int:
    return make_study(store.make_session_factory(module_migrated_url), TRIALS, running=2)


@pytest.fixture
def study(module_migrated_url: str, study_id: int) -> Iterator[tuple[Session, store.StudyRow]]:
    with store.make_session_factory(module_migrated_url)() as session:
        row = store.get_study(session=session, study_id=study_id)
        assert row is not None
        yield session, row


def _numbers(page: store.TrialPage) -> list[int]:
    return [t.number for t in page.rows]


def test_default_view_ranks_complete_trials_first(study) -> None:
    session, row = study
    page = store.list_trials(session=session, study=row, view=store.TrialView(limit=None))
    assert page.total == 10  # 8 ended + 2 running
    assert _numbers(page) == [2, 6, 4, 0, 7, 1, 3, 5, 8, 9]
    assert [t.rank for t in page.rows[:5]] == [1, 2, 3, 4, 5]
    assert all(t.rank is None for t in page.rows[5:])
    # Ranks agree with the API's leaderboard query.
    board = store.leaderboard(session=session, study=row, top=10)
    assert [(e.rank, e.trial.number) for e in board] == [(t.rank, t.number) for t in page.rows[:5]]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("complete", [2, 6, 4, 0, 7]),
        ("pruned", [1, 5]),
        ("failed", [3]),
        ("running", [8, 9]),
    ],
)
def test_state_filters(study, state: str, expected: list[int]) -> None:
    session, row = study
    page = store.list_trials(session=session, study=row, view=store.TrialView(state=state))
    assert _numbers(page) == expected and page.total == len(expected)


@pytest.mark.parametrize(
    ("sort", "desc", "expected"),
    [
        ("number", True, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
        ("value", False, [2, 6, 4, 0, 7, 5, 1, 3, 8, 9]),  # missing values last, ties by number
        ("value", True, [1, 5, 7, 0, 4, 2, 6, 3, 8, 9]),
        ("rank", True, [7, 0, 4, 6, 2, 1, 3, 5, 8, 9]),
        ("param:lr", False, [4, 2, 6, 0, 8, 9, 3, 5, 7, 1]),  # running trials have params
        ("param:lr", True, [1, 7, 5, 3, 0, 8, 9, 6, 2, 4]),
        ("param:hidden", False, [1, 4, 3, 6, 8, 9, 0, 2, 5, 7]),  # layer lists compare as tuples
        ("metric:dev_loss", False, [2, 6, 4, 0, 7, 5, 1, 3, 8, 9]),
        ("epochs_run", False, [3, 8, 9, 1, 5, 0, 2, 4, 6, 7]),
        ("reason", False, [1, 3, 5, 0, 2, 4, 6, 7, 8, 9]),
    ],
)
def test_sort_orders(study, sort: str, desc: bool, expected: list[int]) -> None:
    session, row = study
    view = store.TrialView(sort=sort, desc=desc, limit=None)
    assert _numbers(store.list_trials(session=session, study=row, view=view)) == expected


def test_top_n_and_paging(study) -> None:
    session, row = study
    top = store.list_trials(session=session, study=row, view=store.TrialView(top=3))
    assert _numbers(top) == [2, 6, 4] and top.total == 3
    by_lr = store.TrialView(top=3, sort="param:lr", desc=True)
    assert _numbers(store.list_trials(session=session, study=row, view=by_lr)) == [6, 2, 4]
    first = store.list_trials(session=session, study=row, view=store.TrialView(limit=4))
    second = store.list_trials(session=session, study=row, view=store.TrialView(offset=4, limit=4))
    assert _numbers(first) + _numbers(second) == [2, 6, 4, 0, 7, 1, 3, 5]
    assert first.total == second.total == 10
    sorted_page = store.TrialView(sort="param:keep_prob", offset=2, limit=3)
    assert _numbers(store.list_trials(session=session, study=row, view=sorted_page)) == [1, 2, 3]


def test_the_page_cursor_matches_its_rows(study) -> None:
    session, row = study
    page = store.list_trials(session=session, study=row, view=store.TrialView())
    assert page.cursor == row.change_seq == 8  # eight trials ended
    seqs = session.scalars(
        select(store.TrialRow.seq)
        .where(store.TrialRow.study_id == row.id, store.TrialRow.seq.is_not(None))
        .order_by(store.TrialRow.number)
    ).all()
    assert list(seqs) == list(range(1, 9))  # in the order they ended


def test_changes_since_a_cursor(migrated_url: str) -> None:
    # Its own study: this test ends a trial.
    factory = store.make_session_factory(migrated_url)
    session = factory()
    sid = make_study(factory, TRIALS, running=2)
    row = store.get_study(session=session, study_id=sid)
    assert row is not None
    everything = store.changes_since(session=session, study=row, cursor=0)
    assert [t.number for t in everything.finished] == list(range(8))
    assert [t.number for t in everything.running] == [8, 9]
    assert everything.cursor == 8
    later = store.changes_since(session=session, study=row, cursor=6)
    assert [t.number for t in later.finished] == [6, 7]
    assert later.finished[0].rank == 2
    # A running trial ends: only it comes back, and the running list shrinks.
    session.rollback()  # end the read (on SQLite it holds the write lock)
    with store.session_scope(factory) as s:
        trial_id = s.scalar(
            select(store.TrialRow.id).where(
                store.TrialRow.study_id == sid, store.TrialRow.number == 9
            )
        )
    end_trial(factory, trial_id, "COMPLETE", {"value": 0.1})
    session.rollback()  # a fresh snapshot
    after = store.changes_since(session=session, study=row, cursor=everything.cursor)
    assert [(t.number, t.rank) for t in after.finished] == [(9, 1)]
    assert [t.number for t in after.running] == [8]
    assert after.cursor == 9
    nothing = store.changes_since(session=session, study=row, cursor=after.cursor)
    assert nothing.finished == [] and nothing.cursor == 9
    session.close()


def test_plot_points_and_curve_choice(study) -> None:
    session, row = study
    points = store.plot_points(session=session, study_id=row.id)
    assert [p.number for p in points] == list(range(8))  # ended trials only, by number
    assert points[3].state == "FAIL" and points[3].value is None
    numbers = store.curve_numbers(session=session, study=row, top=2, pruned=1)
    assert numbers == [2, 6, 5, 8, 9]  # best two, latest pruned, every running trial
    curves = store.trial_curves(session=session, study_id=row.id, numbers=[1])
    assert curves[0].reason == "diverged" and curves[0].initial_loss == 2.3
    assert len(curves[0].curves["dev_loss"]) == 2


@pytest.mark.parametrize(
    ("field", "kwargs", "message"),
    [
        ("state", {"state": "done"}, "state: must be one of"),
        ("sort", {"sort": "value; DROP TABLE"}, "sort: must be one of"),
        ("sort", {"sort": "metric:nope"}, "sort: unknown metric"),
        ("top", {"top": 0}, "top: must be between"),
        ("limit", {"limit": 10001}, "limit: must be between"),
        ("offset", {"offset": -1}, "offset: must be >= 0"),
    ],
)
def test_bad_views_name_the_field(field: str, kwargs: dict, message: str) -> None:
    with pytest.raises(store.ViewError, match=message) as error:
        store.TrialView(**kwargs)
    assert error.value.field == field


def test_a_study_sorts_by_the_metrics_its_trials_record() -> None:
    built_in = store.StudyRow(model="mlp", metric="dev_loss", metric_names=None)
    assert store.study_metrics(built_in) == store.RECORDED_METRICS
    own = store.StudyRow(model="external", metric="val_auc", metric_names=None)
    assert store.study_metrics(own) == ("val_auc",)  # before any trial ended
    own.metric_names = ["loss", "val_auc", "val_loss"]
    metrics = store.study_metrics(own)
    assert metrics == ("val_auc", "loss", "val_loss")  # the objective first
    assert store.TrialView(sort="metric:val_loss", metrics=metrics).sort == "metric:val_loss"
    with pytest.raises(store.ViewError, match=r"unknown metric 'dev_loss'; metrics are \[") as e:
        store.TrialView(sort="metric:dev_loss", metrics=metrics)
    assert e.value.field == "sort" and "'val_loss'" in e.value.message
