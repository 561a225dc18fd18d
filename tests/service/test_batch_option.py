"""``--batch-trials`` / ``HPS_BATCH_TRIALS``: "auto" or 1..256, anything else refused with
the value named (a usage error from the CLI, a settings error at start), and ``serve``
hands the value to each local worker it starts."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from search._batch_option import parse_batch_trials
from service import runner
from service.cli import app
from service.settings import Settings


@pytest.mark.parametrize(("text", "value"), [("auto", "auto"), (" AUTO ", "auto"), ("1", 1)])
def test_batch_trials_parse(text: str, value: object) -> None:
    assert parse_batch_trials(text) == value
    assert parse_batch_trials("256") == 256


@pytest.mark.parametrize("bad", ["0", "257", "-1", "2.5", "eight", ""])
def test_a_bad_batch_trials_names_the_value(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=f"got '{bad}'"):
        parse_batch_trials(bad)
    result = CliRunner().invoke(app, ["worker", "--batch-trials", bad])
    assert result.exit_code == 2
    assert "--batch-trials" in result.output and "1..256" in result.output
    monkeypatch.setenv("HPS_BATCH_TRIALS", bad)
    with pytest.raises(ValidationError, match="batch trials must be 'auto'"):
        Settings()


def test_serve_starts_its_workers_with_its_batch_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    def popen(cmd: list[str], **kwargs: Any) -> object:
        started.append(cmd)
        return object()

    monkeypatch.setattr(runner.subprocess, "Popen", popen)
    runner._spawn_worker("sqlite:///x.db", 2, 0, "auto")
    (cmd,) = started
    assert cmd[cmd.index("--batch-trials") + 1] == "auto"


def test_a_bad_setting_is_one_line_naming_it() -> None:
    import subprocess
    import sys

    from tests.processes import env_for

    env = env_for("sqlite:///unused.db", HPS_BATCH_TRIALS="eight")
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: HPS_BATCH_TRIALS: Value error, batch trials must be 'auto' or a whole number "
        "1..256, got 'eight'"
    ]
