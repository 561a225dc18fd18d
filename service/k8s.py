"""Workers of one study as Kubernetes objects: what ``hpsearch k8s render`` prints.

A ``batch/v1`` Job in the work-queue pattern: ``parallelism: N`` pods, ``completions``
unset, each pod one task (``service/worker_tasks.py``) that exits 0 once the study has
ended, so the Job completes when the study does. Or (``keda=True``) a KEDA ``ScaledJob``
that starts one-pod Jobs while the study has open slots (its PostgreSQL trigger runs
``search.store.open_slots_sql``), with the ``TriggerAuthentication`` it names.

Built from dicts and written with ``yaml.safe_dump``: a study's name or a user's command
cannot break the YAML. Object names and labels use the study's id only (``hps-study-7``),
always a valid DNS-1123 name; the name goes in an annotation. The pods take the database
URL (built-in workers) or the API key (the agent of a study of the user's own code) from a
Secret, never from the manifest. PyYAML and the standard library only (the query comes
from ``search.store``, imported when asked for).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml

from service.worker_tasks import DEFAULT_STOP_S, checked_batch_trials, task_command

# The oldest Kubernetes these objects are written for (and validated against by the tests):
# the first release where all they use is GA (Job podFailurePolicy: 1.31).
OLDEST_KUBERNETES = "1.31"
DEFAULT_SECRET = "hpsearch"
DEFAULT_AGENT_URL = "http://hpsearch-api:8000"  # the Service of examples/kubernetes/base
DEFAULT_BACKOFF_LIMIT = 6  # Kubernetes' own default, stated
DEFAULT_TTL_S = 86_400  # a finished Job (and its pods' logs) stays a day
KEDA_POLLING_S = 30
DATABASE_URL_KEY = "HPS_DATABASE_URL"  # the Secret's keys, named as the variables they fill
API_KEY_KEY = "HPS_API_KEY"
KEDA_CONNECTION_KEY = "KEDA_POSTGRESQL_CONNECTION"  # libpq form: postgresql://u:p@host/db
CONTAINER = "worker"
IMAGE_USER = 10001  # the hpsearch image's user (Dockerfile): numeric, for runAsNonRoot
FAIL_AT_ONCE = {"worker": [2], "agent": [2, 126, 127]}  # bad arguments, no GPU, no command

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


def default_image() -> str:
    """``hpsearch:<version>``: the image the Dockerfile builds, tagged with this release."""
    try:
        return f"hpsearch:{version('hpsearch')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "hpsearch:latest"


@dataclass(frozen=True)
class PodRequest:
    """What ``hpsearch k8s render`` asks Kubernetes for: ``workers`` pods (at most, with
    KEDA), each with ``gpus``, ``cpus`` and (optional) ``mem``, from ``image``; the Secret
    they read; the seconds between SIGTERM and SIGKILL (``grace_s``)."""

    workers: int
    gpus: int = 0
    cpus: int = 1
    mem: str | None = None
    image: str | None = None  # None: default_image() (built-in studies only)
    secret: str = DEFAULT_SECRET
    agent_url: str = DEFAULT_AGENT_URL
    grace_s: int = DEFAULT_STOP_S
    backoff_limit: int = DEFAULT_BACKOFF_LIMIT

    batch_trials: str | None = None  # --batch-trials of each built-in worker (None: 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_trials", checked_batch_trials(self.batch_trials))
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if self.gpus < 0:
            raise ValueError(f"--gpus-per-worker must be 0 or more, got {self.gpus}")
        if self.cpus < 1:
            raise ValueError(f"--cpus-per-worker must be at least 1, got {self.cpus}")
        if self.mem is not None and not _QUANTITY.match(self.mem):
            raise ValueError(f"--mem {self.mem!r}: give a Kubernetes quantity such as 16Gi")
        if self.image is not None and not _IMAGE.match(self.image):
            raise ValueError(f"--image {self.image!r}: not an image reference")
        if len(self.secret) > 253 or not _DNS_SUBDOMAIN.match(self.secret):
            raise ValueError(f"--secret {self.secret!r}: not a Secret name (DNS-1123)")
        if not _URL.match(self.agent_url):
            raise ValueError(f"--agent-url {self.agent_url!r}: give an http(s):// URL")
        if not 1 <= self.grace_s <= 86_400:
            raise ValueError(f"--grace must be between 1 and 86400 s, got {self.grace_s}")
        if self.backoff_limit < 0:
            raise ValueError(f"--backoff-limit must be 0 or more, got {self.backoff_limit}")


@dataclass(frozen=True)
class StudyTasks:
    """The study the pods serve: its id and name, and for a study of the user's own code,
    the command each trial runs (empty: a built-in study)."""

    study_id: int
    name: str = ""
    own_code: tuple[str, ...] = ()


def object_name(study_id: int) -> str:
    """The Job's (or ScaledJob's) name: ``hps-study-<id>``, as the Slurm array's."""
    return f"hps-study-{study_id}"


def labels(study_id: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "hpsearch",
        "app.kubernetes.io/component": "worker",
        "hpsearch/study": str(study_id),
    }


def _metadata(tasks: StudyTasks, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": labels(tasks.study_id),
        "annotations": {"hpsearch/study-name": tasks.name},
    }


def _literal(arg: str) -> str:
    """``arg`` as Kubernetes passes it on: ``$(VAR)`` in a command is expanded, ``$$`` is
    one ``$``, so every ``$`` of the user's command is doubled."""
    return arg.replace("$", "$$")


def _env(tasks: StudyTasks, request: PodRequest) -> list[dict[str, Any]]:
    def secret(name: str) -> dict[str, Any]:
        ref = {"name": request.secret, "key": name}
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}

    if tasks.own_code:  # the user's command sees the agent's environment: no database URL
        return [{"name": "HPS_URL", "value": request.agent_url}, secret(API_KEY_KEY)]
    pod_name = {"fieldRef": {"fieldPath": "metadata.name"}}
    return [{"name": "POD_NAME", "valueFrom": pod_name}, secret(DATABASE_URL_KEY)]


def _container(tasks: StudyTasks, request: PodRequest) -> dict[str, Any]:
    command = task_command(
        study_id=tasks.study_id,
        hpsearch=["hpsearch"],
        agent=["hpsearch-agent"],  # the light client's: an image of your code needs no more
        own_code=[_literal(arg) for arg in tasks.own_code],
        cpus=request.cpus,
        gpus=request.gpus,
        batch_trials=request.batch_trials,
    )
    if not tasks.own_code:
        command += ["--name", "$(POD_NAME)"]  # `hpsearch workers` shows the pod's name
    resources: dict[str, dict[str, Any]] = {"requests": {"cpu": str(request.cpus)}}
    if request.mem:
        resources["requests"]["memory"] = request.mem
        resources["limits"] = {"memory": request.mem}
    if request.gpus:
        resources.setdefault("limits", {})["nvidia.com/gpu"] = request.gpus
    return {
        "name": CONTAINER,
        "image": request.image or default_image(),
        "command": command,
        "env": _env(tasks, request),
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def pod_template(tasks: StudyTasks, request: PodRequest) -> dict[str, Any]:
    """Each pod: one task, never restarted in place (the Job starts a new pod), given
    ``grace_s`` to hand its trial back after SIGTERM."""
    security: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if not tasks.own_code:  # the hpsearch image; an image of your code runs as it says
        security |= {"runAsNonRoot": True, "runAsUser": IMAGE_USER, "runAsGroup": IMAGE_USER}
    return {
        "metadata": {"labels": labels(tasks.study_id)},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": request.grace_s,
            "securityContext": security,
            "containers": [_container(tasks, request)],
        },
    }


def _failure_policy(tasks: StudyTasks) -> dict[str, Any]:
    """A pod evicted, preempted or drained does not count against ``backoffLimit``; one
    that exits with a status no retry can mend fails the Job at once."""
    codes = FAIL_AT_ONCE["agent" if tasks.own_code else "worker"]
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": codes},
            },
        ]
    }


def worker_job(tasks: StudyTasks, request: PodRequest) -> dict[str, Any]:
    """The study's Job: ``workers`` pods at once, done when one exits 0 and none runs."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(tasks, object_name(tasks.study_id)),
        "spec": {
            "parallelism": request.workers,
            "backoffLimit": request.backoff_limit,
            "ttlSecondsAfterFinished": DEFAULT_TTL_S,
            "podFailurePolicy": _failure_policy(tasks),
            "template": pod_template(tasks, request),
        },
    }


def trigger_authentication_name(secret: str) -> str:
    return f"{secret}-postgresql"


def trigger_authentication(request: PodRequest) -> dict[str, Any]:
    """How KEDA reaches PostgreSQL: the connection string from the Secret (libpq's form;
    SQLAlchemy's ``postgresql+psycopg://`` is not one)."""
    ref = {"parameter": "connection", "name": request.secret, "key": KEDA_CONNECTION_KEY}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {
            "name": trigger_authentication_name(request.secret),
            "labels": {"app.kubernetes.io/name": "hpsearch"},
        },
        "spec": {"secretTargetRef": [ref]},
    }


def scaled_job(tasks: StudyTasks, request: PodRequest) -> dict[str, Any]:
    """A KEDA ScaledJob: one-pod Jobs, at most ``workers`` at once, started while the
    study has open slots. ``accurate``: the query leaves out running trials (KEDA's
    advice for a queue whose length excludes the messages being worked on)."""
    from search.store import open_slots_sql  # SQLAlchemy: only when asked for

    spec = worker_job(tasks, request)["spec"]
    # One pod per Job; no TTL: the ScaledJob's history limits clean finished Jobs up.
    job = {"parallelism": 1, "completions": 1}
    job |= {k: v for k, v in spec.items() if k not in ("parallelism", "ttlSecondsAfterFinished")}
    trigger = {
        "type": "postgresql",
        "metadata": {
            "query": open_slots_sql(tasks.study_id),
            "targetQueryValue": "1",
            "activationTargetQueryValue": "0",
        },
        "authenticationRef": {"name": trigger_authentication_name(request.secret)},
    }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": _metadata(tasks, object_name(tasks.study_id)),
        "spec": {
            "jobTargetRef": job,
            "pollingInterval": KEDA_POLLING_S,
            "maxReplicaCount": request.workers,
            "successfulJobsHistoryLimit": 5,
            "failedJobsHistoryLimit": 5,
            "scalingStrategy": {"strategy": "accurate"},
            # Applying a changed ScaledJob leaves running Jobs be ("immediate" would stop
            # every worker mid-trial): they end with the study, new ones take the change.
            "rollout": {"strategy": "gradual"},
            "triggers": [trigger],
        },
    }


def manifests(tasks: StudyTasks, request: PodRequest, *, keda: bool = False) -> list[dict]:
    """The objects to apply for one study's workers."""
    if keda:
        return [trigger_authentication(request), scaled_job(tasks, request)]
    return [worker_job(tasks, request)]


def render(objects: Sequence[dict[str, Any]], *, header: str = "") -> str:
    """The objects as one YAML stream (``---`` between them), after ``header`` comments."""
    body = yaml.safe_dump_all(
        list(objects), sort_keys=False, explicit_start=True, width=1 << 16, allow_unicode=True
    )
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comments + body


__all__ = [
    "API_KEY_KEY",
    "DATABASE_URL_KEY",
    "DEFAULT_AGENT_URL",
    "DEFAULT_SECRET",
    "KEDA_CONNECTION_KEY",
    "OLDEST_KUBERNETES",
    "PodRequest",
    "StudyTasks",
    "default_image",
    "labels",
    "manifests",
    "object_name",
    "pod_template",
    "render",
    "scaled_job",
    "trigger_authentication",
    "worker_job",
]
