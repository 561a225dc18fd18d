"""The curl-only loop of ``docs/own-code.md`` (section 5), run as written against the real
server: the trial API needs nothing but HTTP and JSON."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.client.servers import CLIENT_SIDE, Server, external_spec

DOC = Path(__file__).resolve().parents[2] / "docs" / "own-code.md"


def curl_loop() -> str:
    section = DOC.read_text().split("## 5. curl only", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, "no sh block in the curl-only section"
    return found.group(1)


@CLIENT_SIDE
def test_the_documented_curl_loop_runs_a_study(server: Server, tmp_path: Path) -> None:
    missing = [tool for tool in ("bash", "curl", "jq", "awk") if shutil.which(tool) is None]
    if missing:  # a developer's machine may lack one; CI runs the loop or fails
        why = f"the documented loop needs {', '.join(missing)}"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    sid = server.submit(external_spec(n_trials=3, parallelism=1))
    env = server.client_env() | {"STUDY": str(sid)}
    env.pop("HPS_API_KEY", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", curl_loop()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("val_auc=") == 3 and "detail" in done.stdout, done.stdout
    trials = server.trials(sid)
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    for t in trials:
        assert server.trial(sid, t["number"])["curves"]["epoch"] == [0, 1, 2, 3, 4]
    assert server.study(sid)["status"] == "completed"
    assert os.path.exists(tmp_path / "answer.json")
