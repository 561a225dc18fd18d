"""service/supervisor.py: the restart policy on made-up exits and a fake clock, the
supervisor on fake processes, and ``/health`` with and without local workers."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from service.supervisor import (
    DATABASE_GONE,
    History,
    RestartPolicy,
    Supervisor,
    WorkerCounts,
    backoff_s,
    decide,
    describe,
)

FLAT = RestartPolicy(backoff=lambda attempt: float(attempt))  # no jitter: exact delays
FAST, SLOW = 1.0, 60.0  # uptimes below and above fast_s (10 s)


def test_backoff_doubles_from_1_s_to_30_s_with_up_to_1_s_of_jitter() -> None:
    for attempt in range(1, 12):
        floor = min(30.0, 2.0 ** (attempt - 1))
        for _ in range(50):
            assert floor <= backoff_s(attempt) <= min(30.0, floor + 1)
    assert len({backoff_s(1) for _ in range(20)}) > 1  # jittered
    with pytest.raises(ValueError, match="attempt"):
        backoff_s(0)


def test_the_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="fast_s"):
        RestartPolicy(fast_s=0)
    with pytest.raises(ValueError, match="give_up_after"):
        RestartPolicy(give_up_after=0)


@pytest.mark.parametrize("code", [0, 130])
def test_a_worker_that_finished_or_was_killed_on_purpose_is_left_alone(code: int) -> None:
    for uptime in (FAST, SLOW):
        assert decide(FLAT, History(), code=code, uptime_s=uptime, stopping=False).action == (
            "leave"
        )


@pytest.mark.parametrize("code", [1, -9, DATABASE_GONE, 0, 130])
def test_nothing_is_restarted_while_serve_stops(code: int) -> None:
    decision = decide(FLAT, History(3, 3), code=code, uptime_s=FAST, stopping=True)
    assert decision.action == "leave" and decision.history == History(3, 3)


def _exits(codes: list[int], uptime: float, policy: RestartPolicy = FLAT) -> list[str]:
    history, actions = History(), []
    for code in codes:
        decision = decide(policy, history, code=code, uptime_s=uptime, stopping=False)
        history = decision.history
        actions.append(decision.action)
        if decision.action == "give_up":
            break
    return actions


def test_five_fast_crashes_in_a_row_give_up() -> None:
    assert _exits([1] * 9, FAST) == ["restart"] * 4 + ["give_up"]
    assert _exits([-9] * 9, FAST) == ["restart"] * 4 + ["give_up"]
    assert _exits([1] * 3, FAST, RestartPolicy(give_up_after=3)) == ["restart"] * 2 + ["give_up"]


def test_crashes_after_a_long_run_never_give_up_and_back_off_from_the_start() -> None:
    assert _exits([1] * 20, SLOW) == ["restart"] * 20
    history = History(restarts=4, fast_exits=4)
    decision = decide(FLAT, history, code=1, uptime_s=SLOW, stopping=False)
    assert decision.history == History(restarts=1) and decision.delay_s == 1.0


def test_a_long_run_between_fast_crashes_starts_the_count_again() -> None:
    history = History()
    for _ in range(3):
        for uptime in (FAST, FAST, FAST, FAST, SLOW):
            decision = decide(FLAT, history, code=1, uptime_s=uptime, stopping=False)
            assert decision.action == "restart"
            history = decision.history


def test_database_gone_is_restarted_and_never_counts_towards_giving_up() -> None:
    assert _exits([DATABASE_GONE] * 50, FAST) == ["restart"] * 50
    history = History()
    for code in [1, 1, 1, 1] + [DATABASE_GONE] * 10:
        history = decide(FLAT, history, code=code, uptime_s=FAST, stopping=False).history
    assert history.fast_exits == 4  # the four crashes, none of the ten outages
    decision = decide(FLAT, history, code=1, uptime_s=FAST, stopping=False)
    assert decision.action == "give_up"


def test_the_backoff_grows_with_restarts_in_a_row_database_gone_included() -> None:
    history, delays = History(), []
    for code in [1, DATABASE_GONE, 1, DATABASE_GONE]:
        decision = decide(FLAT, history, code=code, uptime_s=FAST, stopping=False)
        history = decision.history
        delays.append(decision.delay_s)
    assert delays == [1.0, 2.0, 3.0, 4.0]
    real = RestartPolicy()
    history = History(restarts=20)
    for _ in range(5):
        decision = decide(real, history, code=DATABASE_GONE, uptime_s=FAST, stopping=False)
        assert decision.delay_s == 30.0  # capped
        history = decision.history


def test_exit_statuses_read_as_words() -> None:
    assert describe(1) == "exited with status 1"
    assert describe(-9) == "was killed by SIGKILL"
    assert "HPS_DB_OUTAGE_S" in describe(DATABASE_GONE)


class FakeProcess:
    """A worker process that exits when told to (``code``) and records its signals."""

    pids = iter(range(1000, 10**6))

    def __init__(self) -> None:
        self.pid = next(self.pids)
        self.code: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGTERM:
            self.code = 0

    def kill(self) -> None:
        self.code = -9

    def wait(self, timeout: float | None = None) -> int:
        assert self.code is not None
        return self.code


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _supervisor(n: int) -> tuple[Supervisor, list[FakeProcess], Clock]:
    started: list[FakeProcess] = []
    clock = Clock()

    def spawn(index: int) -> FakeProcess:
        started.append(FakeProcess())
        return started[-1]

    supervisor = Supervisor(n, spawn, policy=FLAT, clock=clock)
    supervisor.start(watch=False)
    return supervisor, started, clock


def test_a_crashed_worker_is_replaced_after_its_backoff() -> None:
    supervisor, started, clock = _supervisor(2)
    assert supervisor.counts() == WorkerCounts(expected=2, live=2, given_up=0)
    clock.now += SLOW
    started[0].code = -9
    supervisor.poll()
    assert supervisor.counts() == WorkerCounts(2, 1, 0) and len(started) == 2
    clock.now += 0.5
    supervisor.poll()
    assert len(started) == 2  # the 1-s backoff is not over
    clock.now += 0.5
    supervisor.poll()
    assert len(started) == 3 and supervisor.counts() == WorkerCounts(2, 2, 0)
    assert supervisor.pids() == [started[2].pid, started[1].pid]


def test_a_slot_that_keeps_crashing_at_start_is_given_up_with_one_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor, started, clock = _supervisor(2)
    current = started[0]
    for _ in range(5):
        current.code = 1  # at once: each worker lived 0 s
        supervisor.poll()
        clock.now += 30  # past the backoff
        supervisor.poll()
        current = started[-1]
    assert len(started) == 2 + 4
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "exited with status 1" in errors[0] and "giving up" in errors[0], (
        errors
    )
    assert supervisor.counts() == WorkerCounts(expected=2, live=1, given_up=1)


def test_database_gone_keeps_being_restarted() -> None:
    supervisor, started, clock = _supervisor(1)
    for i in range(10):
        started[-1].code = DATABASE_GONE
        supervisor.poll()
        clock.now += 30
        supervisor.poll()
        assert len(started) == i + 2
    assert supervisor.counts() == WorkerCounts(1, 1, 0)


def test_stopping_signals_each_worker_once_and_restarts_none() -> None:
    supervisor, started, clock = _supervisor(3)
    started[0].code = -9  # crashed, its restart due in 1 s
    supervisor.poll()
    supervisor.request_stop()
    clock.now += 30
    supervisor.poll()
    supervisor.poll()
    assert len(started) == 3  # the crashed one was not restarted
    assert [p.signals.count(signal.SIGTERM) for p in started] == [0, 1, 1]
    supervisor.stop()
    assert supervisor.counts() == WorkerCounts(3, 0, 0)
    assert [p.signals.count(signal.SIGTERM) for p in started] == [0, 1, 1]


def test_a_worker_crashing_while_serve_stops_is_not_restarted() -> None:
    supervisor, started, clock = _supervisor(1)
    supervisor.request_stop()
    started[0].code = 1
    clock.now += 30
    supervisor.poll()
    supervisor.poll()
    assert len(started) == 1 and supervisor.counts().live == 0


def test_wake_signals_the_live_workers_only() -> None:
    supervisor, started, _ = _supervisor(2)
    started[1].code = 1
    supervisor.wake()
    assert started[0].signals == [signal.SIGUSR1] and started[1].signals == []


class Counts:
    def __init__(self, counts: WorkerCounts) -> None:
        self.value = counts

    def counts(self) -> WorkerCounts:
        return self.value


def _health(tmp_path: Path, counts: WorkerCounts | None) -> tuple[int, dict[str, object]]:
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    local = Counts(counts) if counts is not None else None
    app = create_app(Settings(database_url=url), recover=False, local_workers=local)
    with TestClient(app) as client:
        reply = client.get("/health")
        assert client.get("/api/v1/health").json() == reply.json()
        return reply.status_code, reply.json()


def test_health_without_local_workers_is_unchanged(tmp_path: Path) -> None:
    assert _health(tmp_path, None) == (
        200,
        {"status": "ok", "database": "ok", "version": "0.1.0"},
    )


def test_health_counts_local_workers_and_is_ok_while_one_lives(tmp_path: Path) -> None:
    code, body = _health(tmp_path, WorkerCounts(expected=2, live=1, given_up=1))
    assert code == 200 and body["status"] == "ok"
    assert body["workers"] == {"expected": 2, "live": 1, "given_up": 1}


@pytest.mark.parametrize(
    ("counts", "detail"),
    [
        (WorkerCounts(expected=2, live=0, given_up=2), "workers given up"),
        (WorkerCounts(expected=2, live=0, given_up=1), "no live workers"),
        (WorkerCounts(expected=2, live=0, given_up=0), "no live workers"),
    ],
)
def test_health_is_503_when_serve_has_no_live_worker(
    tmp_path: Path, counts: WorkerCounts, detail: str
) -> None:
    code, body = _health(tmp_path, counts)
    assert code == 503 and body["status"] == "unavailable" and body["database"] == "ok"
    assert str(body["detail"]).startswith(detail)
    assert body["workers"] == {"expected": 2, "live": 0, "given_up": counts.given_up}


def test_health_while_the_database_is_away_still_counts_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gone' / 'hps.db'}"  # its directory does not exist
    local = Counts(WorkerCounts(expected=2, live=2, given_up=0))
    app = create_app(Settings(database_url=url), recover=False, local_workers=local)
    with TestClient(app) as client:
        reply = client.get("/health")
    assert reply.status_code == 503 and reply.headers["Retry-After"]
    assert reply.json()["workers"] == {"expected": 2, "live": 2, "given_up": 0}
