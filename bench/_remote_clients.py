"""The remote bench's two clients of the same trial, and the processes that run them.

One trial, either way: a configuration of lr (float, log), width (int, log) and act
(categorical) from a random sampler, ``EPOCHS`` reports of the same curve (every trial
reports the same values, so the median pruner reads every other trial's values at each
report yet never prunes: both paths make all their calls), and the end.

- REST: hpsearch's trial API over one kept-alive ``http.client`` connection: POST claim,
  ``EPOCHS`` x POST report {lease, epoch, metrics: {train_loss, val_auc}} (the server
  judges each and answers the decision), POST complete.
- gRPC: Optuna's ``GrpcStorageProxy`` in front of ``run_grpc_proxy_server``:
  ``study.ask()``, the three suggests, ``EPOCHS`` x (``trial.report`` +
  ``trial.should_prune()``, the pruner run in the client), ``study.tell``.

Each client runs in its own process (``Clients``), as a user's training processes would,
so that N of them in parallel do not share one interpreter's lock, and each tells how
much CPU it used. ``python bench/_remote_clients.py URL PORT`` serves Optuna's gRPC proxy
of the database at URL (its RDBStorage with hpsearch's engine settings: WAL, busy
timeout, pool; wrapped in Optuna's cache, as Optuna's documentation asks).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import sys
import time
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import optuna

EPOCHS = 20  # reports per trial
SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "width": {"type": "int", "low": 16, "high": 512, "log": True},
    "act": {"type": "categorical", "choices": ["relu", "gelu"]},
}
# A kept connection the server closed while it was idle (uvicorn's keep-alive timeout).
STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
MEDIAN = {"n_startup_trials": 3, "n_warmup_steps": 1}  # hpsearch's median pruner, warm-up 1


def curve(epoch: int) -> tuple[float, float]:
    """(train_loss, val_auc) at ``epoch``: the same for every trial."""
    return 0.7 * 0.95**epoch, 0.5 + 0.02 * epoch


def external_spec(name: str, pruner: str, n_trials: int, parallelism: int) -> dict[str, Any]:
    """A ``model: external`` study of ``SPACE``, random sampler."""
    return {
        "name": name,
        "model": "external",
        "objective": {"metric": "val_auc", "direction": "maximize"},
        "search": {
            "sampler": "random",
            "n_trials": n_trials,
            "parallelism": parallelism,
            "seed": 0,
            "space": SPACE,
        },
        "pruning": {"pruner": pruner, "warmup_epochs": MEDIAN["n_warmup_steps"]},
    }


def optuna_pruner(pruner: str) -> optuna.pruners.BasePruner:
    if pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner(**MEDIAN)
    raise ValueError(f"pruner: none or median, got {pruner!r}")


@dataclass(frozen=True)
class Target:
    """Where a client sends its trials: ``kind`` rest (``study`` is the study id, ``key``
    an API key or None) or grpc (``study`` is the Optuna study's name)."""

    kind: str
    host: str
    port: int
    study: str
    pruner: str
    key: str | None = None


class RestClient:
    """Trials over hpsearch's REST trial API, one kept-alive connection."""

    def __init__(self, target: Target, name: str) -> None:
        self.conn = http.client.HTTPConnection(target.host, target.port, timeout=60)
        self.prefix = f"/api/v1/studies/{target.study}/trials"
        self.headers = {"Content-Type": "application/json"}
        if target.key:
            self.headers["Authorization"] = f"Bearer {target.key}"
        self.name = name

    def post(self, path: str, body: dict[str, Any]) -> Any:
        payload = json.dumps(body)
        try:
            answer = self._exchange(path, payload)
        except STALE_CONNECTION:  # closed by the server while idle (between blocks)
            self.conn.close()
            answer = self._exchange(path, payload)
        text = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"POST {path}: HTTP {answer.status} {text[:300]!r}")
        return json.loads(text)

    def _exchange(self, path: str, payload: str) -> http.client.HTTPResponse:
        self.conn.request("POST", f"{self.prefix}/{path}", payload, self.headers)
        return self.conn.getresponse()

    def trial(self) -> bool:
        """One trial; whether it was pruned."""
        claimed = self.post("claim", {"client": self.name})
        number, lease = claimed["number"], claimed["lease"]
        for epoch in range(EPOCHS):
            loss, auc = curve(epoch)
            metrics = {"train_loss": loss, "val_auc": auc}
            body = {"lease": lease, "epoch": epoch, "metrics": metrics}
            if self.post(f"{number}/report", body)["decision"] == "prune":
                return True
        self.post(f"{number}/complete", {"lease": lease, "metrics": {"val_auc": auc}})
        return False


class GrpcClient:
    """Trials through Optuna's gRPC storage proxy, as an Optuna user writes them."""

    def __init__(self, target: Target) -> None:
        storage = optuna.storages.GrpcStorageProxy(host=target.host, port=target.port)
        self.study = optuna.load_study(
            study_name=target.study,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),
            pruner=optuna_pruner(target.pruner),
        )

    def trial(self) -> bool:
        trial = self.study.ask()
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        trial.suggest_int("width", 16, 512, log=True)
        trial.suggest_categorical("act", ["relu", "gelu"])
        for epoch in range(EPOCHS):
            _, auc = curve(epoch)
            trial.report(auc, epoch)
            if trial.should_prune():
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return True
        self.study.tell(trial, auc)
        return False


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


def _client_main(conn: Connection, target: Target, name: str) -> None:
    """A client process: run the number of trials it is sent, answer (wall seconds, CPU
    seconds, trials pruned); stop at None."""
    quiet_optuna()
    client = RestClient(target, name) if target.kind == "rest" else GrpcClient(target)
    conn.send("ready")
    while (n := conn.recv()) is not None:
        t0, cpu0 = time.perf_counter(), time.process_time()
        pruned = sum(client.trial() for _ in range(n))
        conn.send((time.perf_counter() - t0, time.process_time() - cpu0, pruned))


@dataclass(frozen=True)
class Block:
    wall: float  # seconds until the last client finished
    client_cpu: float  # CPU seconds, all clients
    trials: int
    pruned: int


class Clients:
    """``n`` client processes of ``target``, each running a block of trials at a time."""

    def __init__(self, target: Target, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for i in range(n):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_client_main, args=(theirs, target, f"bench:{i}"), daemon=True
            )
            proc.start()
            self.conns.append(ours)
            self.procs.append(proc)
        for conn in self.conns:
            if conn.recv() != "ready":
                raise RuntimeError("a client process did not start")

    def block(self, per_client: int) -> Block:
        """Each client runs ``per_client`` trials, all at once."""
        t0 = time.perf_counter()
        for conn in self.conns:
            conn.send(per_client)
        answers = [conn.recv() for conn in self.conns]
        wall = time.perf_counter() - t0
        cpu, pruned = sum(a[1] for a in answers), sum(a[2] for a in answers)
        return Block(wall, cpu, per_client * len(self.conns), pruned)

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.exitcode is None:
                proc.kill()
                proc.join()


def serve_grpc_proxy(url: str, port: int) -> None:
    """Optuna's gRPC proxy of ``url``'s storage on 127.0.0.1:``port``, until killed."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from search.studies import get_storage

    quiet_optuna()
    storage = optuna.storages.get_storage(get_storage(url))  # Optuna's cache in front
    optuna.storages.run_grpc_proxy_server(storage, host="127.0.0.1", port=port)


if __name__ == "__main__":
    serve_grpc_proxy(sys.argv[1], int(sys.argv[2]))
