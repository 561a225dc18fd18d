"""A study of the user's own code (``model: external``) driven through the real REST trial
API, the way a client does: 11 trials complete, one diverges and is pruned, one fails with
its output's tail, one stays running. Works with FastAPI's TestClient and with an httpx
client on a live server alike.

What the trials report, by trial number:

- 0..10 complete: epochs 0, 5 and 10 with ``loss``, ``val_auc`` and ``lr`` (the scheduler's
  learning rate: a metric named like a searched parameter); at completion ``val_auc`` and,
  except trial 0, ``val_loss``. Trial 10 is the best (``val_auc`` rises with the number).
- 11 pruned: ``loss`` 1.0 at epoch 0, then 3.5 at epoch 1, above 3 x 1.0.
- 12 failed: ``loss`` at epoch 0, then ``fail`` with a reason and a log (HTML in it).
- 13 running: epoch 0 with ``loss``, ``val_auc`` and ``grad_norm``, a metric no ended
  trial has reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

SPEC: dict[str, Any] = {
    "name": "own-code-reads",
    "model": "external",
    "objective": {"metric": "val_auc", "direction": "maximize"},
    "search": {
        "sampler": "random",
        "n_trials": 14,
        "parallelism": 2,
        "seed": 5,
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "width": {"type": "int", "low": 8, "high": 256, "log": True},
            "act": {"type": "categorical", "choices": ["relu", "gelu"]},
            "hidden": {"type": "layers", "depth": [1, 3], "units": [16, 128]},
        },
    },
    "pruning": {"divergence_factor": 3.0, "loss_metric": "loss"},
}
COMPLETE = list(range(11))
PRUNED, FAILED, RUNNING = 11, 12, 13
EPOCHS = [0, 5, 10]
# The study's columns beside its objective: what its ended trials reported, first seen first.
METRIC_COLUMNS = ["loss", "lr", "val_loss"]
FAIL_REASON = "CUDA out of memory"
LOG = "".join(f"step {i}: <script>alert('x')</script> & more\n" for i in range(300))


class Http(Protocol):
    def get(self, url: str, **kwargs: Any) -> Any: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...


def client_name(number: int) -> str:
    return f"laptop:{1000 + number}"


def auc(number: int) -> float:
    return round(0.7 + 0.02 * number, 6)


def val_loss(number: int) -> float | None:
    return None if number == 0 else round(0.5 - 0.02 * number, 6)


def curve(number: int) -> dict[str, list[float]]:
    """What a complete trial reports at EPOCHS."""
    return {
        "loss": [1.0, round(0.6 - 0.01 * number, 6), round(0.4 - 0.01 * number, 6)],
        "val_auc": [0.5, round(0.6 + 0.01 * number, 6), auc(number)],
        "lr": [0.1, 0.05, 0.01],
    }


@dataclass(frozen=True)
class Driven:
    study_id: int
    params: dict[int, dict[str, Any]]  # by trial number


def _post(http: Http, url: str, body: dict[str, Any]) -> Any:
    r = http.post(url, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


class _Trial:
    def __init__(self, http: Http, study_id: int, number: int) -> None:
        self.http = http
        base = f"/api/v1/studies/{study_id}/trials"
        claimed = _post(http, f"{base}/claim", {"client": client_name(number)})
        assert claimed["number"] == number, claimed
        self.url = f"{base}/{number}"
        self.lease = claimed["lease"]
        self.params = claimed["params"]

    def report(self, epoch: int, **metrics: float) -> str:
        body = {"lease": self.lease, "epoch": epoch, "metrics": metrics}
        return str(_post(self.http, f"{self.url}/report", body)["decision"])

    def end(self, what: str, **body: Any) -> None:
        _post(self.http, f"{self.url}/{what}", {"lease": self.lease, **body})


def drive(http: Http, base: str = "", headers: dict[str, str] | None = None) -> Driven:
    """Submit the study and play its 14 trials; ``base``: the server's URL (a live one);
    ``headers`` go with every call (a key)."""
    based = _Based(http, base, headers or {})
    r = based.post("/api/v1/studies", json=SPEC)
    assert r.status_code == 201, r.text
    sid = int(r.json()["id"])
    params = {}
    for number in range(RUNNING + 1):
        trial = _Trial(based, sid, number)
        params[number] = trial.params
        _play(trial, number)
    return Driven(sid, params)


def _play(trial: _Trial, number: int) -> None:
    if number in COMPLETE:
        values = curve(number)
        for i, epoch in enumerate(EPOCHS):
            assert trial.report(epoch, **{k: v[i] for k, v in values.items()}) == "continue"
        final = {"val_auc": auc(number)} | ({"val_loss": val_loss(number)} if number else {})
        trial.end("complete", metrics=final)
    elif number == PRUNED:
        assert trial.report(0, loss=1.0, val_auc=0.5) == "continue"
        assert trial.report(1, loss=3.5) == "prune"
    elif number == FAILED:
        assert trial.report(0, loss=1.0) == "continue"
        trial.end("fail", reason=FAIL_REASON, retry=False, log=LOG)
    else:
        assert trial.report(0, loss=0.9, val_auc=0.55, grad_norm=2.0) == "continue"


class _Based:
    """``http`` with ``base`` put before every path and ``headers`` on every call."""

    def __init__(self, http: Http, base: str, headers: dict[str, str]) -> None:
        self.http, self.base, self.headers = http, base, headers

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.http.get(self.base + url, headers=self.headers, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        headers = self.headers | kwargs.pop("headers", {})
        return self.http.post(self.base + url, headers=headers, **kwargs)


__all__ = [
    "COMPLETE",
    "EPOCHS",
    "FAILED",
    "FAIL_REASON",
    "LOG",
    "METRIC_COLUMNS",
    "PRUNED",
    "RUNNING",
    "SPEC",
    "Driven",
    "auc",
    "client_name",
    "curve",
    "drive",
    "val_loss",
]
