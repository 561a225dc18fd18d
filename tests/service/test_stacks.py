"""Trials trained together as one stacked model (issue 25), on SQLite and PostgreSQL: rows
seeded with ``stack`` set directly, read back through the trials and trial JSON, the CSV
export, the study page (its stack column only where some trial has a stack), its live
feed, the trial page, and the workers API, page and CLI listing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from search import store
from service.cli import app as cli
from tests.processes import api_in_thread
from tests.study_data import STACKED_TRIALS, STACKS, make_stacked_study, make_study

HTML = {"Accept": "text/html"}


@dataclass(frozen=True)
class Seeded:
    stacked: int  # a study whose worker trained trials together
    plain: int  # a study that never did
    busy: int  # a worker training trials 4 and 5 of ``stacked`` together now


@pytest.fixture(scope="module")
def client(module_client: TestClient) -> TestClient:
    return module_client


@pytest.fixture(scope="module")
def seeded(module_migrated_url: str) -> Seeded:
    factory = store.make_session_factory(module_migrated_url)
    stacked, busy = make_stacked_study(factory)
    plain = make_study(factory, STACKED_TRIALS[:2])
    with store.session_scope(factory) as s:
        # A row written wrong (not a list of numbers) shows no stack rather than a 500.
        odd = store.register_worker(session=s, name="odd", host="box", pid=8, device="cpu")
        store.set_worker_state(
            session=s, worker_id=odd, status=store.W_BUSY, study_id=stacked, trial_number=0
        )
        s.get(store.WorkerRow, odd).stack = ["x", {"y": 1}]
    return Seeded(stacked, plain, busy)


def page(client: TestClient, url: str, **query: object) -> str:
    r = client.get(url, params=query, headers=HTML)
    assert r.status_code == 200, r.text[:2000]
    return r.text


def trials_json(client: TestClient, sid: int, **query: object) -> list[dict[str, object]]:
    r = client.get(f"/api/v1/studies/{sid}/trials", params={"limit": 100, **query})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_the_trials_and_trial_json_say_which_stack(client: TestClient, seeded: Seeded) -> None:
    rows = trials_json(client, seeded.stacked, sort="number")
    assert {r["number"]: r["stack"] for r in rows} == STACKS
    assert all(r["stack"] is None for r in trials_json(client, seeded.plain))
    for number, stack in STACKS.items():
        one = client.get(f"/api/v1/studies/{seeded.stacked}/trials/{number}").json()
        assert one["stack"] == stack


def test_trials_sort_by_stack_mates_together(client: TestClient, seeded: Seeded) -> None:
    by_stack = trials_json(client, seeded.stacked, sort="stack")
    assert [r["number"] for r in by_stack] == [1, 2, 3, 4, 5, 0]  # no stack last
    desc = trials_json(client, seeded.stacked, sort="stack", desc="true")
    assert [r["number"] for r in desc] == [4, 5, 1, 2, 3, 0]
    html = page(client, f"/studies/{seeded.stacked}", sort="stack")
    assert [int(n) for n in re.findall(r'<tr data-number="(\d+)"', html)] == [1, 2, 3, 4, 5, 0]


def test_the_csv_export_has_a_stack_column_only_when_used(
    client: TestClient, seeded: Seeded
) -> None:
    def read(sid: int) -> list[dict[str, str]]:
        r = client.get(f"/api/v1/studies/{sid}/trials.csv", params={"sort": "number"})
        assert r.status_code == 200
        return list(csv.DictReader(io.StringIO(r.text)))

    rows = read(seeded.stacked)
    assert {int(r["number"]): r["stack"] for r in rows} == {
        n: "" if s is None else str(s) for n, s in STACKS.items()
    }
    assert "stack" not in read(seeded.plain)[0]


def test_the_study_page_marks_stacked_trials(client: TestClient, seeded: Seeded) -> None:
    sid = seeded.stacked
    html = page(client, f"/studies/{sid}", sort="number")
    assert "?sort=stack" in html and 'data-columns="' in html
    assert re.search(r'data-columns="[^"]* stack state reason"', html)
    cells = dict(
        re.findall(r'<tr data-number="(\d+)".*?<td class="num stack">(.*?)</td>', html, re.S)
    )
    assert cells["0"] == ""
    for n in ("1", "2", "3"):
        assert f'href="/studies/{sid}/trials/{n}"' in cells[n] and ">#1</a>" in cells[n]
    assert ">#4</a>" in cells["4"] and ">#4</a>" in cells["5"]
    plain = page(client, f"/studies/{seeded.plain}")
    assert "sort=stack" not in plain and 'class="num stack"' not in plain
    # The live feed renders rows with the same columns (its script reloads on a change).
    live = client.get(f"/studies/{sid}/live", params={"cursor": 0, "sort": "number"}).json()
    assert live["columns"].endswith(" stack state reason")
    running = next(r for r in live["rows"] if r["number"] == 5)
    assert ">#4</a>" in running["html"]


def test_the_trial_page_names_its_stack_mates(client: TestClient, seeded: Seeded) -> None:
    sid = seeded.stacked
    pruned = page(client, f"/studies/{sid}/trials/2")
    stack = re.search(r'<div id="stack"><dt>stack</dt><dd>(.*?)</dd></div>', pruned, re.S)
    assert stack is not None
    text = " ".join(re.sub(r"<[^>]+>", "", stack.group(1)).split())
    assert text == (
        "Trained together with trials 1, 3 (a stack of 3, one model trained at once);"
        " it left the stack when pruned."
    )
    assert f'<a href="/studies/{sid}/trials/1">1</a>' in stack.group(1)
    assert f'<a href="/studies/{sid}/trials/3">3</a>' in stack.group(1)
    pair = page(client, f"/studies/{sid}/trials/4")
    assert "Trained together with trial\n" in pair and "(a stack of 2," in pair
    assert "Training together with trial\n" in page(client, f"/studies/{sid}/trials/5")
    assert 'id="stack"' not in page(client, f"/studies/{sid}/trials/0")
    assert 'id="stack"' not in page(client, f"/studies/{seeded.plain}/trials/0")


def test_workers_show_the_stack_they_train(client: TestClient, seeded: Seeded) -> None:
    sid = seeded.stacked
    workers = {w["name"]: w for w in client.get("/api/v1/workers").json()["data"]}
    assert (workers["gpu0"]["trial_number"], workers["gpu0"]["stack"]) == (4, [4, 5])
    assert (workers["odd"]["trial_number"], workers["odd"]["stack"]) == (0, None)
    html = page(client, "/workers")
    cell = re.search(r'<span class="stacked">(.*?)</span>', html, re.S)
    assert cell is not None
    assert " ".join(re.sub(r"<[^>]+>", "", cell.group(1)).split()) == (
        f"study {sid}, trials 4, 5 (stacked)"
    )
    for n in (4, 5):
        assert f'<a href="/studies/{sid}/trials/{n}">{n}</a>' in cell.group(1)
    assert f"study {sid}, trial 0</a>" in html  # the odd row: its one trial


@pytest.fixture(scope="module")
def api_url(module_migrated_url: str, seeded: Seeded) -> Iterator[str]:
    """The app served over HTTP on the module's database, for the CLI."""
    with api_in_thread(module_migrated_url) as url:
        yield url


def test_the_cli_lists_a_workers_stack(api_url: str, seeded: Seeded) -> None:
    done = CliRunner().invoke(cli, ["workers", "--url", api_url])
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    header = next(line for line in lines if "trial number" in line)
    assert re.search(r"trial number\s+stack\s+last seen", header), header
    gpu = next(line for line in lines if "cuda" in line)
    assert re.search(rf"\bbusy\s+{seeded.stacked}\s+4\s+4,5\s", gpu), gpu
    odd = next(line for line in lines if " cpu " in line)  # its stack unreadable: blank
    assert re.search(rf"\bbusy\s+{seeded.stacked}\s+0\s+\d{{4}}-", odd), odd
