"""``hpsearch_client.Study`` and ``Trial``: construction, what the package imports, and
client processes against the real server (with agents alongside) on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpsearch_client import ServerError, Study
from tests.client.servers import CLIENT_SIDE, Server, external_spec, wait_for

HEAVY = ("torch", "optuna", "sqlalchemy", "fastapi", "httpx", "pydantic", "numpy")
OURS = ("models", "search", "service")


def test_the_client_imports_only_the_standard_library() -> None:
    code = (
        "import sys, hpsearch_client, hpsearch_client.agent; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "hpsearch_client" in out
    assert not set(out) & set(HEAVY + OURS)
    third_party = {m for m in out if m not in sys.stdlib_module_names and not m.startswith("_")}
    assert third_party == {"hpsearch_client"}


def test_study_checks_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPS_URL", raising=False)
    assert Study(None, 3).url == "http://127.0.0.1:8000"
    monkeypatch.setenv("HPS_URL", "https://example.org/hps/")
    assert Study(None, 3).url == "https://example.org/hps"
    assert Study("http://h:1", 3).url == "http://h:1"
    for bad_id in (0, -1, True, "3"):
        with pytest.raises(ValueError, match="study_id"):
            Study(None, bad_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="url"):
        Study("ftp://h", 3)
    with pytest.raises(ValueError, match="timeout"):
        Study(None, 3, timeout=0)
    with pytest.raises(ValueError, match="count"):
        Study(None, 3).trials(count=0)


def test_an_unreachable_server_is_retried_for_a_bounded_time() -> None:
    study = Study("http://127.0.0.1:9", 1, retry_s=0.5)  # the discard port: refused
    with pytest.raises(ServerError, match="trials/claim.*Connection"):
        study.claim()


# --- processes against the real server ----------------------------------------------------


def auc_of(lr: float, width: int) -> float:
    """The made-up objective the test clients and commands report for their parameters."""
    return 0.5 + 0.4 * width / 64 - abs(math.log10(lr) + 2) / 20


AUC = "import math\n" + "\n".join(
    [
        "def auc_of(lr, width):",
        "    return 0.5 + 0.4 * width / 64 - abs(math.log10(lr) + 2) / 20",
    ]
)

CLIENT = (
    AUC
    + """
import sys
from hpsearch_client import Study

study = Study(None, int(sys.argv[1]))
for trial in study.trials():
    with trial:
        auc = auc_of(trial.params["lr"], trial.params["width"])
        for epoch in range(4):
            trial.report(epoch, train_loss=1.0 / (epoch + 1), val_auc=auc * (epoch + 1) / 4)
        trial.complete(val_auc=auc)
print("client done:", study.ended)
"""
)

COMMAND = (
    AUC
    + """
import json, sys
lr, width = float(sys.argv[1]), int(sys.argv[2])
auc = auc_of(lr, width)
for epoch in range(4):
    print(json.dumps({"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "val_auc": auc / 2}))
print("an ordinary line")
print(json.dumps({"val_auc": auc}))
"""
)


@pytest.mark.timeout(600)
def test_clients_and_agents_finish_a_study_together(server: Server) -> None:
    """Two Python clients and two agents share a study: every slot completes exactly once,
    with the value its parameters give."""
    sid = server.submit(external_spec(n_trials=6, parallelism=2))
    command = ["--", sys.executable, "-c", COMMAND, "{lr}", "{width}"]
    hpsearch_agent = str(Path(sys.executable).parent / "hpsearch-agent")
    procs = [
        server.client("client-1", CLIENT, str(sid)),
        server.agent("agent-1", sid, *command),
        server.client("client-2", CLIENT, str(sid)),
        server.start("agent-2", [hpsearch_agent, str(sid), *command]),
    ]
    for proc in procs:
        assert server.wait(proc) == 0, server.output(proc)
    trials = server.trials(sid)
    assert [t["number"] for t in trials] == list(range(6))
    assert {t["state"] for t in trials} == {"COMPLETE"}
    for t in trials:
        assert t["value"] == pytest.approx(auc_of(t["params"]["lr"], t["params"]["width"]))
    assert server.study(sid)["status"] == "completed"
    for proc in procs[1::2]:
        assert "has nothing left" in server.output(proc)


HANDED_BACK = """
import os, sys, time
from hpsearch_client import Study

study = Study(None, int(sys.argv[1]))
for trial in study.trials():
    with trial:
        trial.report(0, train_loss=1.0, val_auc=0.5)
        open(sys.argv[2], "w").write(str(trial.number))
        time.sleep(600)
"""


@CLIENT_SIDE
def test_a_stopped_client_hands_its_trial_back(server: Server, tmp_path: Path) -> None:
    """SIGTERM in a ``with trial:`` block fails the trial with retry and propagates; the
    slot's configuration comes again to the next client."""
    sid = server.submit(external_spec(n_trials=1, parallelism=1))
    started = tmp_path / "started"
    proc = server.client("stopped", HANDED_BACK, str(sid), str(started))
    wait_for("trial start", started.exists)
    proc.send_signal(signal.SIGTERM)
    assert server.wait(proc) == -signal.SIGINT  # KeyboardInterrupt, uncaught: as Python does
    assert "KeyboardInterrupt: SIGTERM" in server.output(proc)
    first = server.trial(sid, 0)
    assert first["state"] == "FAIL" and first["prune_reason"] == "interrupted (KeyboardInterrupt)"

    proc = server.client("next", CLIENT, str(sid))
    assert server.wait(proc) == 0, server.output(proc)
    second = server.trial(sid, 1)
    assert second["state"] == "COMPLETE" and second["params"] == first["params"]
    assert server.study(sid)["status"] == "completed"


@CLIENT_SIDE
def test_a_trial_the_loop_leaves_is_failed_without_retry(server: Server) -> None:
    script = """
import sys
from hpsearch_client import Study

for trial in Study(None, int(sys.argv[1])).trials():
    trial.report(0, train_loss=1.0, val_auc=0.5)
    break
"""
    sid = server.submit(external_spec(n_trials=1, parallelism=1))
    proc = server.client("leaves", script, str(sid))
    assert server.wait(proc) == 0, server.output(proc)
    trial = server.trial(sid, 0)
    assert trial["state"] == "FAIL"
    assert trial["prune_reason"] == "the trials() loop was left before the trial ended"
    assert server.study(sid)["status"] == "completed"  # no retry: the budget is spent


@CLIENT_SIDE
def test_a_block_without_complete_completes_with_the_last_report(server: Server) -> None:
    """And an exception fails its trial and propagates; a count stops the loop."""
    script = """
import sys
from hpsearch_client import Study

study = Study(None, int(sys.argv[1]))
for trial in study.trials(count=1):
    with trial:
        trial.report(0, train_loss=1.0, val_auc=0.25)
        trial.report(1, train_loss=0.5, val_auc=0.75)
assert trial.state == "complete", trial.state
for trial in study.trials():
    with trial:
        trial.report(0, train_loss=1.0, val_auc=0.25)
        raise ValueError("bad batch")
"""
    sid = server.submit(external_spec(n_trials=2, parallelism=1))
    proc = server.client("blocks", script, str(sid))
    assert server.wait(proc) == 1
    assert "ValueError: bad batch" in server.output(proc)
    done, failed = server.trial(sid, 0), server.trial(sid, 1)
    assert done["state"] == "COMPLETE" and done["value"] == 0.75
    assert failed["state"] == "FAIL" and failed["prune_reason"] == "ValueError: bad batch"
    assert server.study(sid)["status"] == "completed"


@CLIENT_SIDE
def test_claims_wait_while_every_slot_is_busy(server: Server, tmp_path: Path) -> None:
    """A second client finds the only slot taken (204) and claims once it is free."""
    sid = server.submit(external_spec(n_trials=2, parallelism=1))
    gate = tmp_path / "gate"
    first = """
import os, sys, time
from hpsearch_client import Study

for trial in Study(None, int(sys.argv[1])).trials(count=1):
    with trial:
        open(sys.argv[2] + ".claimed", "w").close()
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.05)
        trial.complete(val_auc=0.5)
"""
    holder = server.client("holder", first, str(sid), str(gate))
    wait_for("the first claim", Path(str(gate) + ".claimed").exists)
    waiter = server.client("waiter", CLIENT, str(sid))
    time.sleep(1.5)  # let the waiter meet the busy slot (not asserted: just exercised)
    assert waiter.poll() is None
    gate.touch()
    assert server.wait(holder) == 0, server.output(holder)
    assert server.wait(waiter) == 0, server.output(waiter)
    assert [t["state"] for t in server.trials(sid)] == ["COMPLETE", "COMPLETE"]
