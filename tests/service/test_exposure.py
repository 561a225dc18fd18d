"""``serve`` on a non-loopback host needs HPS_AUTH=on, or --insecure (warned at every start)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from service.runner import check_exposure, is_loopback
from tests.processes import env_for, free_port, spawn, stop, wait_healthy


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "example.org", ""]))


def test_exposure_rules(caplog: pytest.LogCaptureFixture) -> None:
    assert check_exposure("127.0.0.1", "off", insecure=False) is None
    assert check_exposure("0.0.0.0", "on", insecure=False) is None
    refusal = check_exposure("0.0.0.0", "off", insecure=False)
    assert refusal is not None and "HPS_AUTH=on" in refusal and "--insecure" in refusal
    with caplog.at_level(logging.WARNING):
        assert check_exposure("0.0.0.0", "off", insecure=True) is None
    assert "INSECURE" in caplog.text


def test_serve_refuses_an_open_network_host(tmp_path: Path) -> None:
    env = env_for(f"sqlite:///{tmp_path / 'hps.db'}", HPS_AUTH="off")
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--host", "0.0.0.0", "--workers", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "refusing to serve 0.0.0.0 with HPS_AUTH=off" in done.stderr
    assert not (tmp_path / "hps.db").exists()  # refused before touching anything


def test_insecure_serves_and_warns(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    args = ["serve", "--host", "0.0.0.0", "--port", str(port), "--workers", "0", "--insecure"]
    proc = spawn(args, env=env_for(f"sqlite:///{tmp_path / 'hps.db'}"), log=log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc)
    assert "INSECURE: serving 0.0.0.0 with HPS_AUTH=off" in log.read_text()
