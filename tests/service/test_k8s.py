"""``hpsearch k8s render``: schema-validated, not applied to a cluster (none runs here).

Renders through the real CLI against a real API and validates every object strictly
(``tests/k8s_checks.py``: kubernetes-validate for core objects, KEDA's CRD schemas for its
own); checks the command lines against the real CLI (``tests/deployment_checks.py``) and the
agent's own parser; runs the KEDA trigger's query on a real PostgreSQL database, where it
must agree with the store's own slot counts.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from hpsearch_client.agent import parse_args
from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from service.cli import app
from service.k8s import (
    API_KEY_KEY,
    DATABASE_URL_KEY,
    DEFAULT_AGENT_URL,
    DEFAULT_SECRET,
    KEDA_CONNECTION_KEY,
    PodRequest,
    StudyTasks,
    default_image,
    manifests,
    render,
)
from service.worker_tasks import task_command
from tests import own_code_data, study_data
from tests.deployment_checks import cli_errors, hps_env_errors
from tests.k8s_checks import container_of, env_of, k8s_expand, validate
from tests.processes import api_in_thread, free_port

OWN_COMMAND = ["python", "train.py", "--lr", "{lr}", "--note", "it's $(HOME) $$ $x"]


# --- a real API to read the studies from ----------------------------------------------------


def _study(url: str, spec: dict[str, Any]) -> int:
    factory = store.make_session_factory(url)
    return create_study(
        session_factory=factory, storage_url=url, spec=ExperimentSpec.model_validate(spec)
    ).id


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app on SQLite (render only reads a study's kind and status, the same on
    every backend): study 1 built-in, 2 your own code, 3 built-in and cancelled."""
    from service.runner import upgrade_db

    url = f"sqlite:///{tmp_path_factory.mktemp('k8s') / 'hps.db'}"
    upgrade_db(url)
    assert [_study(url, s) for s in (study_data.SPEC, own_code_data.SPEC, study_data.SPEC)] == [
        1,
        2,
        3,
    ]
    with store.session_scope(store.make_session_factory(url)) as s:
        store.cancel_study(session=s, study_id=3)
    with api_in_thread(url) as api:
        yield api


def _render(api: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["k8s", "render", "--url", api, *args])


def _objects(api: str, *args: str) -> list[dict[str, Any]]:
    done = _render(api, *args)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("# Written by `hpsearch k8s render")
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    for obj in objects:
        validate(obj)
    return objects


# --- rendered workers -----------------------------------------------------------------------


def test_builtin_study_is_a_work_queue_job(api: str) -> None:
    (job,) = _objects(api, "1", "--workers", "4")
    assert (job["kind"], job["metadata"]["name"]) == ("Job", "hps-study-1")
    spec = job["spec"]
    assert spec["parallelism"] == 4 and "completions" not in spec  # the work-queue pattern
    assert spec["backoffLimit"] == 6 and spec["ttlSecondsAfterFinished"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    container = container_of(job)
    assert container["image"] == default_image()
    expected = task_command(study_id=1, hpsearch=["hpsearch"], cpus=1)
    assert container["command"] == [*expected, "--name", "$(POD_NAME)"]
    assert cli_errors(container["command"][1:], "rendered Job") == []
    env = env_of(container)
    secret = {"secretKeyRef": {"name": DEFAULT_SECRET, "key": DATABASE_URL_KEY}}
    assert env == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        DATABASE_URL_KEY: secret,
    }
    assert hps_env_errors(dict.fromkeys(env), "rendered Job") == []
    assert "limits" not in container["resources"]  # no GPU asked, no memory cap


def test_gpu_workers(api: str) -> None:
    args = ["--gpus-per-worker", "2", "--cpus-per-worker", "8", "--mem", "32Gi"]
    (job,) = _objects(
        api,
        *("1", "--workers", "3", *args, "--image", "reg.example/hps:1", "--grace", "300"),
        *("--batch-trials", "auto"),
    )
    container = container_of(job)
    assert container["resources"] == {
        "requests": {"cpu": "8", "memory": "32Gi"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": 2},
    }
    assert container["command"][-8:] == [
        *("--threads", "8", "--device", "cuda"),
        *("--batch-trials", "auto", "--name", "$(POD_NAME)"),
    ]
    assert container["image"] == "reg.example/hps:1"
    assert job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 300
    assert cli_errors(container["command"][1:], "rendered GPU Job") == []


def test_own_code_study_runs_the_agent_without_the_database_url(api: str) -> None:
    image = ["--image", "me/train:3"]
    (job,) = _objects(api, "2", "--workers", "2", *image, "--", *OWN_COMMAND)
    container = container_of(job)
    argv = container["command"]
    assert argv[0] == "hpsearch-agent"
    env = {"POD_NAME": "hps-study-2-abcde", "HOME": "/root", "x": "no"}
    options = parse_args([k8s_expand(arg, env) for arg in argv[1:]])
    assert (options.study, options.command) == (2, OWN_COMMAND)  # as typed, $ and all
    assert env_of(container) == {
        "HPS_URL": DEFAULT_AGENT_URL,
        API_KEY_KEY: {"secretKeyRef": {"name": DEFAULT_SECRET, "key": API_KEY_KEY}},
    }
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[1]["onExitCodes"]["values"] == [2, 126, 127]
    assert "runAsUser" not in job["spec"]["template"]["spec"]["securityContext"]


def test_keda_scaled_job_counts_open_slots(api: str) -> None:
    auth, scaled = _objects(api, "1", "--workers", "5", "--keda", "--secret", "hps-prod")
    assert (auth["kind"], scaled["kind"]) == ("TriggerAuthentication", "ScaledJob")
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "connection", "name": "hps-prod", "key": KEDA_CONNECTION_KEY}
    ]
    spec = scaled["spec"]
    assert spec["maxReplicaCount"] == 5
    assert spec["scalingStrategy"] == {"strategy": "accurate"}
    assert spec["rollout"] == {"strategy": "gradual"}
    assert (spec["jobTargetRef"]["parallelism"], spec["jobTargetRef"]["completions"]) == (1, 1)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"]["query"] == store.open_slots_sql(1)
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    container = container_of(scaled)
    assert env_of(container)[DATABASE_URL_KEY]["secretKeyRef"]["name"] == "hps-prod"


def test_names_and_text_cannot_break_the_yaml() -> None:
    name = 'x: "y"\n---\nkind: Secret # {{ evil }}'
    tasks = StudyTasks(study_id=12, name=name, own_code=("sh", "-c", "echo ': #\n---'"))
    request = PodRequest(workers=1, image="me/img")
    for keda in (False, True):
        objects = list(yaml.safe_load_all(render(manifests(tasks, request, keda=keda))))
        assert len(objects) == (2 if keda else 1)
        for obj in objects:
            validate(obj)
        assert objects[-1]["metadata"]["annotations"]["hpsearch/study-name"] == name
        assert container_of(objects[-1])["command"][-1] == "echo ': #\n---'"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["99", "--workers", "2"], 1, "error: study 99 not found"),
        (["1", "--workers", "0"], 2, "error: --workers must be at least 1, got 0"),
        (["1", "--workers", "2", "--gpus-per-worker", "-1"], 2, "--gpus-per-worker must be 0"),
        (["1", "--workers", "2", "--cpus-per-worker", "0"], 2, "--cpus-per-worker must be at"),
        (["1", "--workers", "2", "--mem", "lots"], 2, "error: --mem 'lots': give a Kubernetes"),
        (["1", "--workers", "2", "--image", "a b"], 2, "error: --image 'a b': not an image"),
        (["1", "--workers", "2", "--secret", "My_Secret"], 2, "--secret 'My_Secret': not a"),
        (["1", "--workers", "2", "--grace", "0"], 2, "--grace must be between 1 and 86400"),
        (["1", "--workers", "2", "--agent-url", "hps:8000"], 2, "--agent-url 'hps:8000'"),
        (["1", "--workers", "2", "--backoff-limit", "-1"], 2, "--backoff-limit must be 0"),
        (["3", "--workers", "2"], 1, "error: study 3 is cancelled: it has no trials left"),
        (["1", "--workers", "2", "--batch-trials", "0"], 2, "batch trials must be 'auto'"),
        (
            ["2", "--workers", "2", "--image", "me/x", "--batch-trials", "8", "--", "python"],
            2,
            "error: study 2 trains your own code: --batch-trials stacks built-in MLP trials",
        ),
        (
            ["1", "--workers", "2", "--", "python", "train.py"],
            2,
            "error: study 1 trains a built-in model: its workers take no command",
        ),
        (
            ["2", "--workers", "2", "--image", "me/x"],
            2,
            "error: study 2 trains your own code: give the command each trial runs after '--'",
        ),
        (
            ["2", "--workers", "2", "--", "python", "train.py"],
            2,
            "error: study 2 trains your own code: give --image, an image with your code",
        ),
    ],
)
def test_bad_input_is_one_line(api: str, args: list[str], code: int, message: str) -> None:
    done = _render(api, *args)
    assert done.exit_code == code, done.output
    assert message in done.output
    assert "Traceback" not in done.output and "apiVersion" not in done.output


def test_no_server_is_one_line() -> None:
    done = _render(f"http://127.0.0.1:{free_port()}", "1", "--workers", "2")
    assert done.exit_code == 1
    assert done.output.startswith("error: ") and len(done.output.splitlines()) == 1


# --- the KEDA trigger's query on PostgreSQL -------------------------------------------------


def _made_study(factory: Any, *, n_trials: int, parallelism: int) -> int:
    spec = copy.deepcopy(study_data.SPEC)
    spec["search"] |= {"n_trials": n_trials, "parallelism": parallelism}
    data = ExperimentSpec.model_validate(spec).model_dump(mode="json")
    with store.session_scope(factory) as s:
        row = store.insert_study(
            session=s, spec=data, optuna_study_name=f"k8s-{time.monotonic_ns()}", n_trials=n_trials
        )
        return row.id


def _start(factory: Any, study_id: int) -> int:
    with store.session_scope(factory) as s:
        claim = store.claim_slot(session=s, study_id=study_id)
        assert claim is not None
        return store.insert_trial(
            session=s, claim=claim, worker_id=None, number=None, optuna_trial_id=None, params={}
        )


def _end(factory: Any, row_id: int, state: str, *, retry: bool = False) -> None:
    with store.session_scope(factory) as s:
        store.lock_study(session=s, study_id=s.get(store.TrialRow, row_id).study_id)
        trial = store.lock_running_trial(session=s, trial_row_id=row_id)
        assert trial is not None
        values = {"value": 0.5} if state == store.T_COMPLETE else {"reason": "lost"}
        store.finish_trial(session=s, trial=trial, state=state, values=values, retry=retry)


def _expected_open(factory: Any, study_id: int) -> int:
    """Open slots from the store's own slot counts: budget left (slots not done nor
    running), capped by the free running slots; none once the study has ended."""
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=study_id)
        if row is None or row.status not in store.ACTIVE_STUDY_STATES:
            return 0
        slots = store.slot_counts(session=s, study_ids=[study_id])[study_id]
        return min(row.n_trials - slots.done - slots.running, row.parallelism - slots.running)


def test_keda_query_counts_open_slots_on_postgresql(postgres_url: str) -> None:
    from service.runner import upgrade_db

    upgrade_db(postgres_url)
    factory = store.make_session_factory(postgres_url)
    studies: dict[str, tuple[int, int]] = {}

    def study(label: str, n_trials: int, parallelism: int, expected: int) -> int:
        sid = _made_study(factory, n_trials=n_trials, parallelism=parallelism)
        studies[label] = (sid, expected)
        return sid

    study("fresh", 10, 3, 3)
    small = study("fresh, budget below parallelism", 2, 5, 2)
    running = study("two running of three", 10, 3, 1)
    for _ in range(2):
        _start(factory, running)
    partly = study("four done, one running", 6, 4, 1)
    rows = [_start(factory, partly) for _ in range(4)]
    for row, state in zip(
        rows, (store.T_COMPLETE, store.T_PRUNED, store.T_FAIL, store.T_COMPLETE), strict=True
    ):
        _end(factory, row, state)
    _start(factory, partly)
    handed = study("one handed back for a retry", 3, 3, 2)
    first, _ = _start(factory, handed), _start(factory, handed)
    _end(factory, first, store.T_FAIL, retry=True)
    full = study("all budget running", 2, 3, 0)
    for _ in range(2):
        _start(factory, full)
    done = study("completed", 2, 2, 0)
    for row in [_start(factory, done) for _ in range(2)]:
        _end(factory, row, store.T_COMPLETE)
    cancelled = study("cancelled", 5, 2, 0)
    with store.session_scope(factory) as s:
        store.cancel_study(session=s, study_id=cancelled)
    studies["no such study"] = (9999, 0)
    assert small and full

    engine = store.get_engine(postgres_url)
    for label, (sid, expected) in studies.items():
        query = manifests(StudyTasks(sid), PodRequest(workers=1), keda=True)[1]
        sql = query["spec"]["triggers"][0]["metadata"]["query"]
        with engine.connect() as conn:
            rows_found = conn.execute(text(sql)).all()
        assert len(rows_found) == 1, label  # KEDA reads one row: never none
        assert (label, rows_found[0][0]) == (label, expected)
        assert (label, _expected_open(factory, sid)) == (label, expected)


def test_query_takes_only_a_study_id() -> None:
    for bad in (0, -1, True, "1; DROP TABLE hps_studies"):
        with pytest.raises(ValueError, match="a study id is a positive integer"):
            store.open_slots_sql(bad)  # type: ignore[arg-type]


def test_more_pods_than_the_study_runs_at_once_is_a_note(api: str) -> None:
    """Own-code study 2 runs 2 trials at once: a third pod would idle. Said on stderr;
    stdout stays YAML to pipe to kubectl."""
    done = _render(api, "2", "--workers", "3", "--image", "me/x", "--", "python", "t.py")
    assert done.exit_code == 0, done.output
    assert done.stderr == (
        "note: study 2 runs at most 2 trials at once: 1 of the 3 pods will wait idle\n"
    )
    (job,) = yaml.safe_load_all(done.stdout)
    assert job["spec"]["parallelism"] == 3


def test_the_cli_knows_the_active_states_the_store_claims_from() -> None:
    """worker_tasks keeps its own copy (standard library only, for the CLI)."""
    from service.worker_tasks import ACTIVE_STATUSES

    assert tuple(ACTIVE_STATUSES) == tuple(store.ACTIVE_STUDY_STATES)
