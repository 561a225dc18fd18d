"""``examples/own-code``: the PyTorch script on the Python client and its command-line twin
under ``hpsearch agent`` share the example spec's study (a smaller budget) and finish it.
One backend: the examples exercise the client, not the storage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.client.servers import Server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "own-code"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.timeout(600)
def test_the_own_code_examples_run_a_study(server: Server) -> None:
    spec = yaml.safe_load((EXAMPLES / "spec.yaml").read_text())
    spec["search"] |= {"n_trials": 4, "parallelism": 2}
    sid = server.submit(spec)
    script = server.start("train", [sys.executable, str(EXAMPLES / "train.py"), str(sid)])
    agent = server.agent(
        "agent", sid, "--", sys.executable, str(EXAMPLES / "train_cli.py"),
        "--lr", "{lr}", "--width", "{width}", "--keep-prob", "{keep_prob}",
    )  # fmt: skip
    assert server.wait(script, timeout=500) == 0, server.output(script)
    assert server.wait(agent, timeout=500) == 0, server.output(agent)
    trials = server.trials(sid)
    assert len(trials) == 4 and {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    assert all(0.5 < t["value"] <= 1 for t in trials if t["state"] == "COMPLETE")
    assert server.study(sid)["status"] == "completed"
