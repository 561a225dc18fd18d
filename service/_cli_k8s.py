"""``hpsearch k8s render STUDY --workers N``: the Kubernetes objects that run one study's
workers (``service/k8s.py`` builds them), printed as YAML for ``kubectl apply -f -``.

A client command: it reads the study from the API (``--url``/``HPS_URL``, the key in
``HPS_API_KEY``), as ``hpsearch status`` does, and needs no database and no cluster. It
applies nothing.
"""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from service._cli_common import DEFAULT_URL, BatchTrialsOption, UrlOption, connect, fail
from service.k8s import (
    DEFAULT_AGENT_URL,
    DEFAULT_BACKOFF_LIMIT,
    DEFAULT_SECRET,
    PodRequest,
    StudyTasks,
    manifests,
    render,
)
from service.own_code import is_own_code
from service.worker_tasks import DEFAULT_STOP_S, StudyTaskError, check_study

__all__ = ["register_k8s_commands"]

USAGE = "hpsearch k8s render ID --workers N --image IMG -- python train.py --lr {lr}"


def render_command(
    study: Annotated[int, typer.Argument(help="Study id.", min=1)],
    workers: Annotated[
        int, typer.Option("--workers", help="Pods at once (the Job's parallelism).")
    ],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="For a study of your own code: the command each trial runs, after '--' "
            "(as for `hpsearch agent`)."
        ),
    ] = None,
    gpus: Annotated[
        int, typer.Option("--gpus-per-worker", help="GPUs per pod (nvidia.com/gpu limit).")
    ] = 0,
    cpus: Annotated[int, typer.Option("--cpus-per-worker", help="CPUs per pod.")] = 1,
    mem: Annotated[str | None, typer.Option("--mem", help="Memory per pod: 16Gi.")] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help="The pods' image (default: hpsearch:<version>; your own code: required, "
            "an image with your code and hpsearch-client).",
        ),
    ] = None,
    keda: Annotated[
        bool,
        typer.Option("--keda", help="A KEDA ScaledJob (and its TriggerAuthentication) instead."),
    ] = False,
    grace: Annotated[
        int,
        typer.Option(
            "--grace",
            help="Seconds between SIGTERM and SIGKILL (terminationGracePeriodSeconds): a "
            "worker hands its trial back at its next epoch boundary.",
        ),
    ] = DEFAULT_STOP_S,
    secret: Annotated[
        str, typer.Option("--secret", help="The Secret the pods (and KEDA) read.")
    ] = DEFAULT_SECRET,
    agent_url: Annotated[
        str,
        typer.Option("--agent-url", help="The API as the pods reach it (your own code)."),
    ] = DEFAULT_AGENT_URL,
    backoff_limit: Annotated[
        int, typer.Option("--backoff-limit", help="Failed pods before the Job fails.")
    ] = DEFAULT_BACKOFF_LIMIT,
    url: UrlOption = DEFAULT_URL,
    batch_trials: BatchTrialsOption = None,
) -> None:
    """Print the Kubernetes Job (or KEDA ScaledJob) running one study's workers."""
    own_code = tuple(command or ())
    try:
        request = PodRequest(
            workers=workers,
            gpus=gpus,
            cpus=cpus,
            mem=mem,
            image=image,
            secret=secret,
            agent_url=agent_url,
            grace_s=grace,
            backoff_limit=backoff_limit,
            batch_trials=batch_trials,
        )
    except ValueError as exc:
        fail(str(exc), 2)
    with connect(url) as client:
        found = client.get_study(study)
    try:
        check_study(
            study_id=study,
            status=str(found.get("status")),
            own_code_study=is_own_code(found),
            command=own_code,
            usage=USAGE,
            batch_trials=request.batch_trials,
        )
    except StudyTaskError as exc:
        fail(str(exc), exc.code)
    if own_code and image is None:
        fail(
            f"study {study} trains your own code: give --image, an image with your code "
            "and hpsearch-client (its hpsearch-agent runs each trial)",
            2,
        )
    parallelism = int(found.get("parallelism") or workers)
    if workers > parallelism and not keda:
        typer.echo(
            f"note: study {study} runs at most {parallelism} trials at once: "
            f"{workers - parallelism} of the {workers} pods will wait idle",
            err=True,
        )
    tasks = StudyTasks(study_id=study, name=str(found.get("name") or ""), own_code=own_code)
    args = ["hpsearch", "k8s", "render", str(study), "--workers", str(workers)]
    header = (
        f"Written by `{shlex.join(args)} ...` for study {study}: "
        f"{'a KEDA ScaledJob' if keda else 'a Job'} of at most {workers} pod(s).\n"
        "Apply with `kubectl apply -f -`; it needs the Secret of examples/kubernetes/base."
    )
    typer.echo(render(manifests(tasks, request, keda=keda), header=header), nl=False)


def register_k8s_commands(app: typer.Typer) -> None:
    """Add the ``k8s`` group to the ``hpsearch`` app."""
    k8s_app = typer.Typer(help="Workers as Kubernetes objects.", no_args_is_help=True)
    k8s_app.command("render")(render_command)
    app.add_typer(k8s_app, name="k8s", rich_help_panel="Server")
