"""``hpsearch agent`` hands its arguments to ``hpsearch_client.agent`` untouched: the ``--``
that click would drop included, ``--help`` answered by the agent's own parser. (The agent
itself, against a real server, is tested in ``tests/client``.)"""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from service.cli import app


def test_agent_help_is_the_agents_own() -> None:
    result = CliRunner().invoke(app, ["agent", "--help"])
    assert result.exit_code == 0, result.output
    assert "usage: hpsearch agent STUDY [--count N] [--url URL] [--grace SECONDS] -- CMD" in (
        result.output
    )


def test_agent_arguments_keep_the_double_dash() -> None:
    """The agent's options come before ``--``; a missing command is a usage error. (That
    options after it belong to the command is shown by tests/client, whose commands run as
    ``hpsearch agent ... -- python -c ...``.)"""
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "agent", "3", "--count", "0", "--", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--count: must be at least 1" in done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "service.cli", "agent", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no command: give it after --" in missing.stderr
