"""The ``hpsearch`` client commands against a real HTTP server faking the REST API."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from typer.testing import CliRunner, Result

from service.cli import EXAMPLE_SPEC, app

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = yaml.safe_load(EXAMPLE_SPEC)

LEADERBOARD: dict[str, Any] = {
    "study_id": 7,
    "metric": "dev_loss",
    "direction": "minimize",
    "data": [
        {
            "rank": 1,
            "number": 3,
            "state": "COMPLETE",
            "value": 0.12,
            "params": {"lr": 0.003, "keep_prob": 0.8, "hidden": [128, 64]},
            "metrics": {"train_loss": 0.05, "dev_loss": 0.12, "dev_accuracy": 0.97},
            "epochs_run": 10,
            "duration_s": 1.3,
        },
        {
            "rank": 2,
            "number": 0,
            "state": "COMPLETE",
            "value": 0.25,
            "params": {"lr": 0.02, "keep_prob": 0.6, "hidden": [32]},
            "metrics": {"train_loss": 0.2, "dev_loss": 0.25, "dev_accuracy": 0.93},
            "epochs_run": 10,
            "duration_s": 0.9,
        },
    ],
}


def _study(
    study_id: int, status: str, counts: tuple[int, int, int, int], best: float | None = None
) -> dict[str, Any]:
    complete, pruned, fail, running = counts
    return {
        "id": study_id,
        "name": "digits-random",
        "status": status,
        "spec": SPEC,
        "dataset": "digits",
        "sampler": "random",
        "metric": "dev_loss",
        "direction": "minimize",
        "n_trials": 12,
        "parallelism": 2,
        "created_at": "2025-01-01T00:00:00Z",
        "started_at": None if status == "queued" else "2025-01-01T00:00:01Z",
        "finished_at": "2025-01-01T00:01:00Z" if status in ("completed", "cancelled") else None,
        "counts": {"running": running, "complete": complete, "pruned": pruned, "fail": fail},
        "best": None if best is None else {"number": 3, "value": best, "params": {"lr": 0.003}},
    }


class FakeApi:
    """Canned state: study 7 goes queued -> running -> completed over successive GETs,
    study 8 ends cancelled, study 3 is already completed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, Any]] = []
        self.gets: dict[int, int] = {}
        self.timelines: dict[int, list[dict[str, Any]]] = {
            7: [
                _study(7, "queued", (0, 0, 0, 0)),
                _study(7, "running", (1, 1, 0, 2), best=0.25),
                _study(7, "running", (5, 2, 1, 2), best=0.12),
                _study(7, "completed", (8, 3, 1, 0), best=0.12),
            ],
            8: [_study(8, "running", (1, 0, 0, 1), 0.3), _study(8, "cancelled", (1, 0, 0, 0), 0.3)],
            3: [_study(3, "completed", (12, 0, 0, 0), best=0.1)],
        }

    def handle(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        parsed = urlparse(url)
        parts = parsed.path.removeprefix("/api/v1/").strip("/").split("/")
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        with self.lock:
            self.requests.append((method, url, body))
            return self._route(method, parts, query, body)

    def _route(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if parts == ["health"]:
            return 200, {"status": "ok"}
        if parts == ["workers"]:
            worker = {"id": 1, "host": "box", "pid": 42, "device": "cpu", "status": "busy"}
            return 200, {"data": [worker], "count": 1}
        if parts == ["studies"] and method == "POST":
            return self._create(body)
        if parts == ["studies"]:
            studies = [timeline[-1] for timeline in self.timelines.values()]
            return 200, {"data": studies, "count": len(studies)}
        study_id = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
        if study_id not in self.timelines:
            return 404, {"detail": f"study {parts[1] if len(parts) > 1 else ''} not found"}
        timeline = self.timelines[study_id]
        if len(parts) == 2:
            seen = self.gets.get(study_id, 0)
            self.gets[study_id] = seen + 1
            return 200, timeline[min(seen, len(timeline) - 1)]
        if parts[2] == "leaderboard":
            board = copy.deepcopy(LEADERBOARD)
            board["study_id"] = study_id
            board["data"] = board["data"][: int(query.get("top", "10"))]
            return 200, board
        if parts[2] == "cancel" and method == "POST":
            if timeline[-1]["status"] == "completed":
                return 409, {"detail": f"study {study_id} is already completed"}
            return 200, {**timeline[-1], "status": "cancelled"}
        return 404, {"detail": "Not Found"}

    def _create(self, body: Any) -> tuple[int, Any]:
        n_trials = body.get("search", {}).get("n_trials", 0)
        if n_trials > 10000:
            msg = "Input should be less than or equal to 10000"
            item = {"loc": ["body", "search", "n_trials"], "msg": msg, "type": "less_than_equal"}
            return 422, {"detail": [item]}
        return 201, {**self.timelines[7][0], "name": body["name"]}


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, payload = api.handle(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def url(api: FakeApi) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(EXAMPLE_SPEC, encoding="utf-8")
    return path


def invoke(*args: str, input: str | None = None) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", "HPS_URL": None})
    return runner.invoke(app, list(args), input=input)


def assert_one_error_line(result: Result, code: int) -> str:
    """Exited ``code`` cleanly (no crash, no traceback) with one ``error:`` line on stderr."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_submit_prints_new_study_id(url: str, api: FakeApi, spec_file: Path) -> None:
    result = invoke("submit", str(spec_file), "--url", url)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [
        "created study 7 (digits-random)",
        f"page: {url}/studies/7",
    ]
    assert [(m, body) for m, path, body in api.requests if m == "POST"] == [("POST", SPEC)]


def test_submit_reads_json_from_stdin_and_url_from_env(url: str, api: FakeApi) -> None:
    runner = CliRunner(env={"HPS_URL": url})
    result = runner.invoke(app, ["submit", "-"], input=json.dumps({**SPEC, "name": "piped"}))
    assert result.exit_code == 0, result.output
    assert "created study 7 (piped)" in result.stdout


def test_submit_watch_follows_study_and_prints_leaderboard(url: str, spec_file: Path) -> None:
    result = invoke("submit", str(spec_file), "--watch", "--interval", "0.05", "--url", url)
    assert result.exit_code == 0, result.output
    assert "created study 7 (digits-random)" in result.stdout
    assert "12/12" in result.stdout  # 8 complete + 3 pruned + 1 failed of 12
    # A server without ``slots`` (older): its attempts read as slots.
    assert "12/12 done (8 complete, 3 pruned, 1 failed) · running 0" in result.stdout
    assert "study 7 leaderboard" in result.stdout
    assert "128-64" in result.stdout and "0.12" in result.stdout


def test_watch_cancelled_study_exits_1(url: str) -> None:
    result = invoke("watch", "8", "--interval", "0.05", "--url", url)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"page: {url}/studies/8\n")
    assert "study 8 leaderboard" in result.stdout
    assert result.stderr.strip() == "error: study 8 ended cancelled"


def test_leaderboard_json_equals_server_json(url: str) -> None:
    result = invoke("leaderboard", "7", "--json", "--url", url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == LEADERBOARD


def test_leaderboard_csv_header_and_rows(url: str) -> None:
    result = invoke("leaderboard", "7", "--csv", "--top", "5", "--url", url)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == [
        "rank", "number", "value", "hidden", "keep_prob", "lr", "epochs_run", "duration_s",
    ]  # fmt: skip
    assert rows[1] == ["1", "3", "0.12", "128-64", "0.8", "0.003", "10", "1.3"]
    assert rows[2] == ["2", "0", "0.25", "32", "0.6", "0.02", "10", "0.9"]
    assert len(rows) == 3


def test_leaderboard_table_and_top(url: str, api: FakeApi) -> None:
    result = invoke("leaderboard", "7", "--top", "1", "--url", url)
    assert result.exit_code == 0, result.output
    assert "128-64" in result.stdout and "32" not in result.stdout.split("128-64")[1]
    assert any("top=1" in path for _, path, _ in api.requests)


def test_invalid_spec_422_is_one_line_with_field_path(url: str, tmp_path: Path) -> None:
    bad = copy.deepcopy(SPEC)
    bad["search"]["n_trials"] = 20000
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    line = assert_one_error_line(invoke("submit", str(path), "--url", url), 1)
    assert line == "error: search.n_trials: Input should be less than or equal to 10000"


def test_unknown_study_404_and_cancel_completed_409(url: str) -> None:
    assert assert_one_error_line(invoke("status", "99", "--url", url), 1) == (
        "error: study 99 not found"
    )
    line = assert_one_error_line(invoke("cancel", "3", "--url", url), 1)
    assert line == "error: study 3 is already completed"


def test_unreachable_server_is_one_clear_line(spec_file: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = f"http://127.0.0.1:{port}"
    for args in (["list"], ["submit", str(spec_file)], ["watch", "1"]):
        line = assert_one_error_line(invoke(*args, "--url", dead), 1)
        assert line.startswith(f"error: cannot reach hpsearch server at {dead}")


def test_missing_spec_file_exits_2(tmp_path: Path) -> None:
    line = assert_one_error_line(invoke("submit", str(tmp_path / "nope.yaml")), 2)
    assert "nope.yaml" in line


@pytest.mark.parametrize("text", ["name: [unclosed\n", "search:\n  a: 1\n b: 2\n", "- 1\n"])
def test_bad_yaml_exits_2(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    line = assert_one_error_line(invoke("submit", str(path)), 2)
    assert "bad.yaml" in line


def test_list_status_cancel_workers(url: str) -> None:
    listed = invoke("list", "--url", url)
    assert listed.exit_code == 0, listed.output
    assert "digits-random" in listed.stdout and "12/12" in listed.stdout
    status = invoke("status", "3", "--url", url)
    assert status.exit_code == 0, status.output
    assert "study 3 (digits-random): completed" in status.stdout
    assert "lr = 0.003" in status.stdout
    cancelled = invoke("cancel", "8", "--url", url)
    assert cancelled.stdout.strip() == "study 8 (digits-random): cancelled"
    workers = invoke("workers", "--url", url)
    assert workers.exit_code == 0 and "box" in workers.stdout


def test_example_is_the_documented_spec() -> None:
    result = invoke("example")
    assert result.exit_code == 0
    assert result.stdout == EXAMPLE_SPEC
    spec = yaml.safe_load(result.stdout)
    assert set(spec) == {"name", "dataset", "model", "objective", "search", "training", "pruning"}
    lr = {"type": "float", "low": 3e-4, "high": 3e-2, "log": True}
    assert spec["search"]["space"]["lr"] == lr
    assert spec["search"]["n_trials"] == 40


def _run_python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_client_commands_do_not_import_heavy_packages() -> None:
    code = (
        "import service.cli, sys; "
        "heavy = [m for m in ('torch', 'optuna', 'sqlalchemy', 'fastapi') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = _run_python("-c", code)
    assert proc.returncode == 0, proc.stderr


def test_console_entry_point_runs_without_tty() -> None:
    proc = _run_python("-c", "import sys; from service.cli import main; main()", "example")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == EXAMPLE_SPEC
