"""``hpsearch_client.agent``: its arguments, the substitution of parameters into the command,
the JSON lines it reads, stopping a command's whole process group, and agents against the
real server (SQLite and PostgreSQL): pruned, failing, cancelled and stopped commands."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hpsearch_client._command import Command
from hpsearch_client.agent import (
    Options,
    ReportLine,
    _env,
    command_for,
    group_alive,
    param_text,
    parse_args,
    read_line,
)
from tests.client.servers import CLIENT_SIDE, Server, external_spec, running, wait_for

# --- arguments -----------------------------------------------------------------------------


def test_the_command_is_everything_after_the_first_double_dash() -> None:
    options = parse_args(["7", "--count", "3", "--grace", "2.5", "--", "python", "t.py", "--", "x"])
    assert options == Options(7, ["python", "t.py", "--", "x"], 3, None, 2.5)
    assert parse_args(["7", "--url", "http://h:1", "--", "run"]).url == "http://h:1"
    # the command's own options are never taken for the agent's
    assert parse_args(["7", "--", "train", "--count", "9"]).command == ["train", "--count", "9"]
    assert parse_args(["7", "--", "train"]).grace == 10.0


@pytest.mark.parametrize(
    "argv",
    [
        ["7"],  # no command
        ["7", "--"],  # an empty one
        ["x", "--", "run"],  # not a study id
        ["0", "--", "run"],
        ["7", "--count", "0", "--", "run"],
        ["7", "--grace", "-1", "--", "run"],
        ["7", "--grace", "nan", "--", "run"],
        ["7", "--bogus", "--", "run"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv, prog="hpsearch-agent")
    assert exc.value.code == 2
    assert "hpsearch-agent: error:" in capsys.readouterr().err


# --- substitution --------------------------------------------------------------------------


def test_parameter_values_as_arguments() -> None:
    assert param_text(0.0031) == "0.0031"
    assert param_text(1e-05) == "1e-05"
    assert param_text(0.1 + 0.2) == "0.30000000000000004"  # repr: the exact float
    assert param_text(128) == "128"
    assert param_text(True) == "true" and param_text(False) == "false"
    assert param_text("gelu") == "gelu"
    assert param_text([64, 32]) == "64,32"
    assert param_text([]) == ""
    assert param_text(None) == "null"


def test_only_exact_placeholders_of_parameter_names_are_replaced() -> None:
    params = {"lr": 0.01, "width": 64, "hidden": [64, 32], "act": "relu"}
    template = [
        "python",
        "train.py",
        "--lr={lr}",
        "--width",
        "{width}",
        "--hidden",
        "{hidden}",
        "{act}-{width}",
        "{other}",  # not a parameter
        "{ lr }",  # not exact
        "{{lr}}",  # the inner {lr} is a placeholder; the outer braces stay
        '{"json": 1}',
        "${HOME}",
    ]
    assert command_for(template, params) == [
        "python",
        "train.py",
        "--lr=0.01",
        "--width",
        "64",
        "--hidden",
        "64,32",
        "relu-64",
        "{other}",
        "{ lr }",
        "{0.01}",
        '{"json": 1}',
        "${HOME}",
    ]


# --- lines ---------------------------------------------------------------------------------


def test_the_command_learns_its_study_trial_and_slot() -> None:
    from types import SimpleNamespace

    trial = SimpleNamespace(study_id=3, number=7, slot=5, params={"lr": 0.1})
    env = _env(trial, "/tmp/params.json")  # type: ignore[arg-type]
    assert (env["HPSEARCH_STUDY"], env["HPSEARCH_TRIAL"], env["HPSEARCH_SLOT"]) == ("3", "7", "5")
    assert env["HPSEARCH_PARAMS"] == '{"lr": 0.1}'


def test_json_lines_with_an_integer_epoch_are_reports() -> None:
    assert read_line('{"epoch": 3, "train_loss": 0.41, "val_auc": 0.88}\n') == ReportLine(
        3, {"train_loss": 0.41, "val_auc": 0.88}
    )
    # values that are not numbers are left out; NaN/inf count as numbers
    line = read_line('{"epoch": 0, "train_loss": NaN, "note": "warm-up", "lr": "inf"}')
    assert line is not None and line.epoch == 0
    assert math.isnan(line.metrics["train_loss"]) and line.metrics["lr"] == math.inf
    assert set(line.metrics) == {"train_loss", "lr"}


def test_json_lines_without_an_epoch_are_final_metrics() -> None:
    assert read_line(' {"val_auc": 0.91, "test": 1} ') == ReportLine(
        None, {"val_auc": 0.91, "test": 1}
    )


@pytest.mark.parametrize(
    "text",
    [
        "epoch 3: loss 0.41",
        "",
        "{not json}",
        "[1, 2]",
        '"text"',
        '{"epoch": "3", "val_auc": 0.9}',  # not an integer epoch
        '{"epoch": 3.0, "val_auc": 0.9}',
        '{"epoch": true, "val_auc": 0.9}',
        '{"epoch": null, "val_auc": 0.9}',
        '{"epoch": 3, "message": "no numbers"}',
        '{"level": "info", "msg": "a JSON log line"}',
        '{"ok": true}',  # booleans are not metrics
    ],
)
def test_other_lines_pass_through(text: str) -> None:
    assert read_line(text) is None


# --- stopping a command's process group ----------------------------------------------------

# A command that starts a grandchild, prints both pids and waits; with ``stubborn`` both
# ignore SIGTERM.
FAMILY = """
import os, signal, subprocess, sys, time
stubborn = sys.argv[1] == "stubborn"
if stubborn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(os.getpid(), child.pid, flush=True)
time.sleep(300)
"""


def wait_gone(pids: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(running(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if running(p)]}"
        time.sleep(0.05)


def start_family(mode: str, grace: float) -> tuple[Command, list[int]]:
    command = Command([sys.executable, "-c", FAMILY, mode], dict(os.environ), grace)
    assert command.proc.stdout is not None
    pids = [int(p) for p in command.proc.stdout.readline().split()]
    assert len(pids) == 2 and all(running(pid) for pid in pids)
    assert os.getpgid(pids[1]) == command.pgid == pids[0]  # one group, led by the command
    return command, pids


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_stopping_a_command_stops_its_whole_group(mode: str) -> None:
    """SIGTERM to the group; what ignores it is killed after the grace period."""
    command, pids = start_family(mode, grace=0.5 if mode == "stubborn" else 30)
    command.finish()
    assert command.proc.wait(timeout=60) != 0
    wait_gone(pids)
    assert not group_alive(command.pgid)


def test_what_a_finished_command_leaves_behind_is_stopped() -> None:
    """A command that exits leaving a child in its group: the child is stopped too."""
    script = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
        "print(child.pid, flush=True)"
    )
    command = Command([sys.executable, "-c", script], dict(os.environ), grace=30)
    assert command.proc.stdout is not None
    child = int(command.proc.stdout.readline())
    assert command.proc.wait(timeout=60) == 0
    assert running(child) and group_alive(command.pgid)
    command.finish()
    wait_gone([child])


def test_a_group_of_zombies_is_not_alive() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    deadline = time.monotonic() + 60
    while running(proc.pid):  # exited but not reaped: a zombie of ours
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert not group_alive(proc.pid)
    proc.wait()


# --- agents against the real server --------------------------------------------------------

# Writes its pid and its grandchild's to DIR/pids-TRIAL, reports epoch 0, then as told:
# ``diverge`` reports a loss 50x the first (the server prunes), ``sleep`` waits. The
# grandchild ignores SIGTERM, so only the SIGKILL after the grace period stops it.
FAMILY_COMMAND = """
import json, os, subprocess, sys, time
directory, mode = sys.argv[1], sys.argv[2]
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
path = os.path.join(directory, "pids-" + os.environ["HPSEARCH_TRIAL"])
with open(path + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {grandchild.pid}")
os.replace(path + ".tmp", path)
print(json.dumps({"epoch": 0, "train_loss": 1.0, "val_auc": 0.5}))
if mode == "diverge":
    print(json.dumps({"epoch": 1, "train_loss": 50.0, "val_auc": 0.5}))
time.sleep(600)
"""


def family_pids(directory: Path, trial: int) -> list[int]:
    path = directory / f"pids-{trial}"
    wait_for(f"{path.name}", path.exists)
    return [int(p) for p in path.read_text().split()]


@CLIENT_SIDE
def test_a_pruned_command_and_its_children_are_gone(server: Server, tmp_path: Path) -> None:
    sid = server.submit(external_spec(n_trials=2, parallelism=1))
    agent = server.agent(
        "agent", sid, "--grace", "1", "--", sys.executable, "-c", FAMILY_COMMAND,
        str(tmp_path), "diverge",
    )  # fmt: skip
    assert server.wait(agent) == 0, server.output(agent)
    for number in (0, 1):
        pids = family_pids(tmp_path, number)
        assert not [pid for pid in pids if running(pid)]  # the agent waited for them
        trial = server.trial(sid, number)
        assert trial["state"] == "PRUNED", trial
        assert "diverg" in (trial["prune_reason"] or "")
    assert "trial 1 pruned" in server.output(agent)
    assert server.study(sid)["status"] == "completed"


FAILING = """
import sys
print("an ordinary line on stdout")
print('{"epoch": 0, "train_loss": 1.0, "val_auc": 0.5}', flush=True)
for i in range(2000):
    print(f"noise {i}", file=sys.stderr)
print("boom: the last words", file=sys.stderr)
sys.exit(3)
"""


@CLIENT_SIDE
def test_a_failing_command_fails_its_trial_with_its_output_tail(server: Server) -> None:
    sid = server.submit(external_spec(n_trials=1, parallelism=1))
    agent = server.agent("agent", sid, "--", sys.executable, "-c", FAILING)
    assert server.wait(agent) == 0, server.output(agent)
    output = server.output(agent)
    assert "an ordinary line on stdout" in output and "boom: the last words" in output
    trial = server.trial(sid, 0)
    assert trial["state"] == "FAIL" and trial["prune_reason"] == "exit status 3"
    assert trial["curves"]["epoch"] == [0]
    # the log: the tail (8 KB) of the command's stderr and other stdout lines, interleaved
    # as the agent read them from the two pipes
    log = trial["log"]
    assert "noise 1999\nboom: the last words\n" in log and "noise 0\n" not in log
    assert len(log.encode()) <= 8192
    assert server.study(sid)["status"] == "completed"


@CLIENT_SIDE
def test_a_command_that_exits_0_without_the_objective_fails(server: Server) -> None:
    sid = server.submit(external_spec(n_trials=1, parallelism=1))
    script = 'print(\'{"epoch": 0, "train_loss": 1.0}\')'
    agent = server.agent("agent", sid, "--", sys.executable, "-c", script)
    assert server.wait(agent) == 0, server.output(agent)
    trial = server.trial(sid, 0)
    assert trial["state"] == "FAIL"
    assert trial["prune_reason"] == "exit status 0 but no 'val_auc' was reported"


@CLIENT_SIDE
def test_a_cancelled_study_stops_the_command(server: Server, tmp_path: Path) -> None:
    """The heartbeat meets 409 (the lease is gone): the command's group is stopped, and the
    next claim finds the study ended."""
    sid = server.submit(external_spec(n_trials=2, parallelism=1))
    agent = server.agent(
        "agent", sid, "--grace", "1", "--", sys.executable, "-c", FAMILY_COMMAND,
        str(tmp_path), "sleep",
    )  # fmt: skip
    pids = family_pids(tmp_path, 0)
    r = httpx.post(f"{server.url}/api/v1/studies/{sid}/cancel", timeout=30)
    assert r.status_code == 200, r.text
    assert server.wait(agent) == 0, server.output(agent)
    assert not [pid for pid in pids if running(pid)]
    assert "trial 0 lost" in server.output(agent)
    assert server.study(sid)["status"] == "cancelled"


@CLIENT_SIDE
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_agent_hands_its_trial_back(
    server: Server, tmp_path: Path, sig: signal.Signals
) -> None:
    sid = server.submit(external_spec(n_trials=1, parallelism=1))
    agent = server.agent(
        "agent", sid, "--grace", "1", "--", sys.executable, "-c", FAMILY_COMMAND,
        str(tmp_path), "sleep",
    )  # fmt: skip
    pids = family_pids(tmp_path, 0)
    wait_for("the report", lambda: server.trial(sid, 0)["curves"].get("epoch") == [0])
    agent.send_signal(sig)
    assert server.wait(agent) == 128 + sig, server.output(agent)
    assert not [pid for pid in pids if running(pid)]
    trial = server.trial(sid, 0)
    assert trial["state"] == "FAIL" and trial["prune_reason"] == f"agent stopped by {sig.name}"
    # the slot is handed back: the same configuration runs again as trial 1
    agent = server.agent(
        "again", sid, "--", sys.executable, "-c",
        "import json; print(json.dumps({'val_auc': 0.75}))",
    )  # fmt: skip
    assert server.wait(agent) == 0, server.output(agent)
    again = server.trial(sid, 1)
    assert again["state"] == "COMPLETE" and again["params"] == trial["params"]


@CLIENT_SIDE
def test_a_command_that_cannot_start_hands_its_trial_back(server: Server) -> None:
    sid = server.submit(external_spec(n_trials=1, parallelism=1))
    agent = server.agent("agent", sid, "--", "/nonexistent/train", "--lr", "{lr}")
    assert server.wait(agent) == 127, server.output(agent)
    assert "could not start '/nonexistent/train'" in server.output(agent)
    trial = server.trial(sid, 0)
    assert trial["state"] == "FAIL" and "could not start" in trial["prune_reason"]
    assert server.study(sid)["status"] != "completed"  # the slot is waiting for a retry
