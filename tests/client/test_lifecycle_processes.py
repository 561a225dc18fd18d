"""The trial lifecycle's guarantees with real client processes against the real server,
on SQLite and PostgreSQL: a client killed mid-trial loses only that attempt (its
configuration goes to another client after the grace period, its late calls get 409),
four clients share a grid with every point run exactly once, and a diverging
configuration is pruned at its first report above 3x its initial loss."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from tests.client.servers import Server, external_spec, wait_for

# Reports epoch 0, writes (number, lease, params) to argv[2], then hangs: to be SIGKILLed.
HANGS = """
import json, os, sys, time
from hpsearch_client import Study

study = Study(None, int(sys.argv[1]))
trial = study.claim()
trial.report(0, train_loss=1.0, val_auc=0.5)
lease = trial.lease
with open(sys.argv[2] + ".tmp", "w") as f:
    json.dump({"number": trial.number, "params": trial.params, "lease": lease}, f)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(600)
"""

FINISHES = """
import sys
from hpsearch_client import Study

for trial in Study(None, int(sys.argv[1])).trials():
    with trial:
        for epoch in range(3):
            trial.report(epoch, train_loss=1.0 / (epoch + 1), val_auc=0.5 + epoch / 10)
        trial.complete(val_auc=trial.params["lr"])
"""


@pytest.mark.timeout(600)
def test_a_killed_client_loses_only_its_attempt_and_its_late_calls_get_409(
    server: Server, tmp_path: Path
) -> None:
    sid = server.submit(external_spec(n_trials=2, parallelism=2))
    held = tmp_path / "held.json"
    victim = server.client("victim", HANGS, str(sid), str(held))
    wait_for("the victim's claim", held.exists)
    lost = json.loads(held.read_text())
    victim.send_signal(signal.SIGKILL)
    server.wait(victim)
    # Another client finishes the study; the victim's slot comes back to it once the
    # lease expires (HPS_GRACE_PERIOD=4), with the same parameters.
    survivor = server.client("survivor", FINISHES, str(sid))
    assert server.wait(survivor) == 0, server.output(survivor)
    trials = server.trials(sid)
    first = next(t for t in trials if t["number"] == lost["number"])
    assert first["state"] == "FAIL" and "lease not renewed" in first["reason"]
    retried = [t for t in trials if t["params"] == lost["params"] and t["state"] == "COMPLETE"]
    assert len(retried) == 1 and retried[0]["number"] != lost["number"]
    assert sorted(t["state"] for t in trials) == ["COMPLETE", "COMPLETE", "FAIL"]
    # The killed client's lease, replayed: every call is refused and nothing changes.
    lease = lost["lease"]
    base = f"{server.url}/api/v1/studies/{sid}/trials/{lost['number']}"
    late = [
        httpx.post(f"{base}/report", json={"lease": lease, "epoch": 1, "metrics": {"val_auc": 1}}),
        httpx.post(f"{base}/complete", json={"lease": lease, "metrics": {"val_auc": 1.0}}),
    ]
    assert [r.status_code for r in late] == [409, 409]
    assert server.trial(sid, lost["number"])["state"] == "FAIL"
    assert server.study(sid)["status"] == "completed"


@pytest.mark.timeout(600)
def test_four_clients_run_every_grid_point_exactly_once(server: Server) -> None:
    space = {
        "lr": {"type": "float", "values": [0.1, 0.03, 0.01, 0.003]},
        "width": {"type": "int", "values": [8, 16, 32]},
    }
    spec = external_spec(parallelism=4)
    spec["search"] = {"sampler": "grid", "parallelism": 4, "space": space}
    sid = server.submit(spec)
    clients = [server.client(f"grid-{i}", FINISHES, str(sid)) for i in range(4)]
    for proc in clients:
        assert server.wait(proc) == 0, server.output(proc)
    trials = server.trials(sid)
    assert {t["state"] for t in trials} == {"COMPLETE"}
    points = sorted((t["params"]["lr"], t["params"]["width"]) for t in trials)
    assert points == sorted((lr, w) for lr in (0.1, 0.03, 0.01, 0.003) for w in (8, 16, 32))
    assert server.study(sid)["status"] == "completed"


DIVERGES = """
import sys
from hpsearch_client import Study

losses = [1.0, 2.0, 2.9, 3.2, 5.0, 8.0]
for trial in Study(None, int(sys.argv[1])).trials():
    told = []
    with trial:
        for epoch, loss in enumerate(losses):
            told.append(epoch)
            trial.report(epoch, train_loss=loss, val_auc=0.5)
        trial.complete(val_auc=0.5)
    print("reported epochs", told, "state", trial.state)
"""


def test_a_diverging_configuration_is_pruned_at_its_first_report_above_three_times(
    server: Server,
) -> None:
    sid = server.submit(external_spec(n_trials=1, parallelism=1))
    proc = server.client("diverges", DIVERGES, str(sid))
    assert server.wait(proc) == 0, server.output(proc)
    assert "reported epochs [0, 1, 2, 3] state pruned" in server.output(proc)
    trial = server.trial(sid, 0)
    assert trial["state"] == "PRUNED" and trial["prune_reason"] == "diverged"
    assert trial["curves"]["train_loss"] == [1.0, 2.0, 2.9, 3.2]
