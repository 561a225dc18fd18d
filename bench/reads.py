"""Read speed at scale: a 10,000-trial study (1,000 of them with 30-epoch curves), read by
hpsearch's pages and API and by optuna-dashboard, both started on the same database and
measured in one run (requests alternate between them, so drift hits both alike).

    .venv/bin/python bench/reads.py [--db URL] [--trials 10000] [--curves 1000]
                                    [--epochs 30] [--requests 30] [--no-dashboard]

It prints, per request, the median and 99th-percentile time (a client on loopback, so it
includes HTTP but no network) and the bytes on the wire (gzip where the server offers it),
and what a browser transfers on a first visit to the study page, plotly.js aside.
The database is built once (Optuna's tables through Optuna itself, hps_* rows in bulk)
and reused when ``--db`` names one that already holds the study.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _serve import free_port  # noqa: E402

from search import store  # noqa: E402
from search.spec import ExperimentSpec  # noqa: E402
from search.studies import get_storage  # noqa: E402
from service.runner import upgrade_db  # noqa: E402

NAME = "reads-bench"
SPEC = {
    "name": NAME,
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 10000,
        "parallelism": 4,
        "space": {
            "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
            "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
            "hidden": {"type": "layers", "depth": [1, 2], "units": [16, 512]},
        },
    },
    "training": {"epochs": 30},
    "pruning": {"pruner": "median"},
}
DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-5, 1.0, log=True),
    "keep_prob": FloatDistribution(0.5, 1.0),
    "hidden.depth": IntDistribution(1, 2),
    "hidden.units_0": IntDistribution(16, 512, log=True),
    "hidden.units_1": IntDistribution(16, 512, log=True),
}


@dataclass
class Made:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]  # decoded knobs (hps_trials)
    raw: dict[str, Any]  # Optuna's parameters
    curve: list[float] = field(default_factory=list)


def made_trials(n: int, n_curves: int, epochs: int, seed: int = 0) -> list[Made]:
    """A plausible search: value depends mostly on lr; every 10th trial pruned."""
    rng = random.Random(seed)
    out = []
    with_curves = set(rng.sample(range(n), n_curves))
    for k in range(n):
        lr = math.exp(rng.uniform(math.log(1e-5), 0.0))
        keep = rng.uniform(0.5, 1.0)
        depth = rng.randint(1, 2)
        units = [int(math.exp(rng.uniform(math.log(16), math.log(512)))) for _ in range(depth)]
        value = 0.1 + abs(math.log10(lr) + 2.5) * 0.3 + (1 - keep) * 0.2 + rng.random() * 0.05
        state = "PRUNED" if k % 10 == 7 else "COMPLETE"
        raw = {"lr": lr, "keep_prob": keep, "hidden.depth": depth}
        raw |= {f"hidden.units_{i}": u for i, u in enumerate(units)}
        curve = []
        if k in with_curves:
            curve = [2.3 - (2.3 - value) * (1 - math.exp(-e / 6)) for e in range(epochs + 1)]
        params = {"lr": lr, "keep_prob": keep, "hidden": units}
        out.append(Made(k, state, value, params, raw, curve))
    return out


def build(url: str, n: int, n_curves: int, epochs: int) -> tuple[int, int]:
    """Create the study on both sides; returns (hps study id, Optuna study id)."""
    upgrade_db(url)
    factory = store.make_session_factory(url)
    with store.session_scope(factory) as s:
        found = s.execute(
            select(store.StudyRow.id, store.StudyRow.optuna_study_name).where(
                store.StudyRow.name == NAME
            )
        ).first()
    storage = get_storage(url)
    if found is not None:
        return found[0], storage.get_study_id_from_name(found[1])
    t0 = time.perf_counter()
    trials = made_trials(n, n_curves, epochs)
    optuna_name = f"hps-{NAME}"
    study = optuna.create_study(study_name=optuna_name, storage=storage)
    study.set_user_attr("hps_study_name", NAME)
    frozen = []
    for t in trials:
        dists = {k: DISTRIBUTIONS[k] for k in t.raw}
        frozen.append(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState[t.state],
                value=t.value if t.state == "COMPLETE" else None,
                params=t.raw,
                distributions=dists,
                intermediate_values=dict(enumerate(t.curve)),
            )
        )
    study.add_trials(frozen)
    spec = ExperimentSpec.model_validate(SPEC | {"search": SPEC["search"] | {"n_trials": n}})
    with store.session_scope(factory) as s:
        row = store.insert_study(
            session=s, spec=spec.model_dump(mode="json"), optuna_study_name=optuna_name, n_trials=n
        )
        row.status, row.claimed, row.change_seq = store.COMPLETED, n, n
        row.started_at = row.finished_at = store.utcnow()
        study_id = row.id
    rows = [
        {
            "study_id": study_id,
            "number": t.number,
            "optuna_trial_id": t.number,
            "state": t.state,
            "value": t.value,
            "params": t.params,
            "metrics": {"initial_loss": 2.3, "train_loss": t.value, "dev_loss": t.value},
            "curves": {"train_loss": t.curve, "dev_loss": t.curve, "dev_accuracy": []},
            "epochs_run": epochs if t.state == "COMPLETE" else 3,
            "duration_s": 1.0,
            "reason": "pruned (median)" if t.state == "PRUNED" else None,
            "started_at": store.utcnow(),
            "finished_at": store.utcnow(),
            "heartbeat_at": store.utcnow(),
            "seq": t.number + 1,
        }
        for t in trials
    ]
    with store.session_scope(factory) as s:
        for i in range(0, len(rows), 1000):
            s.execute(insert(store.TrialRow), rows[i : i + 1000])
    print(f"built {n} trials in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return study_id, study._study_id


def start(cmd: list[str], url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"{cmd[0]} did not start; see {log}")


ASKED = itertools.count()


def timed(client: httpx.Client, url: str) -> tuple[float, int]:
    """One request's time and bytes. Each request makes its answer, as optuna-dashboard
    does: hpsearch keeps an answer per study version and URL, so each asks its own URL."""
    if "/api/studies/" not in url:  # not the dashboard's
        url += ("&" if "?" in url else "?") + f"asked={next(ASKED)}"
    t0 = time.perf_counter()
    r = client.get(url, headers={"Accept-Encoding": "gzip"})
    elapsed = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return elapsed, r.num_bytes_downloaded


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--curves", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-dashboard", action="store_true", help="skip optuna-dashboard")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hps-reads-"))
    url = args.db or f"sqlite:///{tmp / 'reads.db'}"
    sid, optuna_id = build(url, args.trials, args.curves, args.epochs)

    port = free_port()
    env = os.environ | {"HPS_DATABASE_URL": url, "HPS_LOG_LEVEL": "WARNING"}
    base = f"http://127.0.0.1:{port}"
    procs = [
        start(
            [sys.executable, "-m", "service.cli", "serve", "--workers", "0", "--port", str(port)],
            f"{base}/health",
            env,
            tmp / "serve.log",
        )
    ]
    targets = {
        "hpsearch study page (HTML)": f"{base}/studies/{sid}",
        "hpsearch plot data (JSON)": f"{base}/api/v1/studies/{sid}/plots",
        "hpsearch importance (cached)": f"{base}/api/v1/studies/{sid}/importance",
        "hpsearch live poll, nothing new": f"{base}/studies/{sid}/live?cursor={args.trials}",
        "hpsearch leaderboard API (top 10)": f"{base}/api/v1/studies/{sid}/leaderboard",
        "hpsearch study summary API": f"{base}/api/v1/studies/{sid}",
    }
    dashboard = shutil.which("optuna-dashboard") or str(
        Path(sys.executable).parent / "optuna-dashboard"
    )
    if not args.no_dashboard and Path(dashboard).exists():
        dport = free_port()
        dbase = f"http://127.0.0.1:{dport}"
        procs.append(
            start(
                [dashboard, url, "--port", str(dport), "--quiet"],
                f"{dbase}/api/studies",
                env,
                tmp / "dashboard.log",
            )
        )
        targets["optuna-dashboard GET /api/studies/{id}"] = f"{dbase}/api/studies/{optuna_id}"
    elif not args.no_dashboard:
        print("optuna-dashboard not installed (make bench installs it): skipped", file=sys.stderr)
    try:
        report(targets, base, sid, args)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def report(targets: dict[str, str], base: str, sid: int, args: argparse.Namespace) -> None:
    times: dict[str, list[float]] = {k: [] for k in targets}
    sizes: dict[str, int] = {}
    first: dict[str, float] = {}
    with httpx.Client(timeout=120) as client:
        for name, url in targets.items():  # the first (cold) request of each
            first[name], sizes[name] = timed(client, url)
        for _ in range(2):  # warm-up
            for url in targets.values():
                timed(client, url)
        for _ in range(args.requests):
            for name, url in targets.items():
                elapsed, _ = timed(client, url)
                times[name].append(elapsed)
        html = client.get(f"{base}/studies/{sid}").text
        assets = [
            base + a.split('"')[0]
            for a in html.split('src="')[1:] + html.split('href="')[1:]
            if a.startswith("/static/")
        ]
        first_load = sizes["hpsearch study page (HTML)"] + sizes["hpsearch plot data (JSON)"]
        first_load += sizes["hpsearch importance (cached)"]
        first_load += sum(timed(client, a)[1] for a in assets)
        plotly = next(a for a in html.split('src="')[1:] if a.startswith("/assets/plotly"))
        plotly_bytes = timed(client, base + plotly.split('"')[0])[1]
    print(
        f"\n{args.trials} trials ({args.curves} with {args.epochs}-epoch curves), "
        f"{args.requests} requests each, python {sys.version.split()[0]}, "
        f"optuna {optuna.__version__}"
    )
    print(f"{'request':<42} {'first ms':>9} {'p50 ms':>8} {'p99 ms':>8} {'KB on the wire':>15}")
    for name in targets:
        t = times[name]
        print(
            f"{name:<42} {first[name]:>9.1f} {statistics.median(t):>8.1f} {pct(t, 0.99):>8.1f} "
            f"{sizes[name] / 1024:>15.1f}"
        )
    print(
        f"\nfirst visit to the study page: {first_load / 1024:.0f} KB "
        f"(HTML, plot data, importance, {len(assets)} static files), plus plotly.js "
        f"{plotly_bytes / 1024:.0f} KB gzip once (cached for a year)"
    )


if __name__ == "__main__":
    main()
