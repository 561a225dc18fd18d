"""The deployment files (Dockerfile, .dockerignore, docker-compose.yml) agree with the code.

No Docker engine is needed: the files are parsed here and checked against the real CLI and the
real settings:

- every ``hpsearch ...`` command line they run (compose ``command``/``entrypoint``/healthchecks
  in string or list form, Dockerfile ``CMD``/``ENTRYPOINT``/``RUN``/``HEALTHCHECK`` in exec or
  shell form, including ``sh -c "a && exec b"``) names an existing subcommand, uses only flags
  that ``hpsearch <subcommand> --help`` lists, and parses (types, ranges, extra arguments);
- every ``HPS_*`` variable they set is a field of :class:`service.settings.Settings` and its
  value validates;
- the compose stack is postgres + api + a scalable worker, and the image is non-root, pins the
  same torch as pyproject.toml and probes a real ``/health`` route.

Each check returns a list of one-line error messages naming the file, place and culprit; the
``*_reports_*`` tests feed the checks broken input to prove that they can fail.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from service.settings import Settings
from tests.deployment_checks import (
    _copy_sources,
    _last,
    cli_errors,
    compose_cli_errors,
    compose_env_errors,
    compose_structure_errors,
    dockerfile_cli_errors,
    dockerfile_env_errors,
    dockerfile_structure_errors,
    load_compose,
    load_dockerfile,
)
from tests.deployment_files import (
    dockerfile_argv,
    dockerfile_env,
    dockerignored,
    healthcheck_argv,
    hpsearch_invocations,
    parse_dockerfile,
    read_dockerignore,
)

# --- the tests on the real files ------------------------------------------------------------


def test_every_hpsearch_command_line_is_accepted_by_the_cli() -> None:
    instructions = load_dockerfile()
    errors = dockerfile_cli_errors(instructions)
    errors += compose_cli_errors(load_compose(), instructions)
    assert not errors, "\n".join(errors)


def test_every_hps_variable_is_a_settings_field() -> None:
    errors = dockerfile_env_errors(load_dockerfile()) + compose_env_errors(load_compose())
    assert not errors, "\n".join(errors)


def test_compose_stack_shape() -> None:
    errors = compose_structure_errors(load_compose(), load_dockerfile())
    assert not errors, "\n".join(errors)


def test_dockerfile_shape() -> None:
    errors = dockerfile_structure_errors(load_dockerfile())
    assert not errors, "\n".join(errors)


def test_image_healthcheck_probes_a_real_route() -> None:
    from service.app import create_app

    check = _last(load_dockerfile(), "HEALTHCHECK")
    assert check is not None, "Dockerfile: no HEALTHCHECK"
    found = re.search(r"https?://[^/'\"\s]+(/[^'\"\s]*)", check.args)
    assert found, f"{check.where}: no URL in {check.args!r}"
    paths = create_app(Settings(database_url="sqlite://"), recover=False).openapi()["paths"]
    assert found.group(1) in paths, f"{check.where}: {found.group(1)} is not a route of the app"


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest() -> None:
    patterns = read_dockerignore()
    copied = {
        source
        for ins in load_dockerfile()
        if ins.keyword in ("COPY", "ADD")
        for source in _copy_sources(ins)
    }
    errors = [
        f".dockerignore excludes {source}, which the Dockerfile copies"
        for source in sorted(copied)
        if dockerignored(source, patterns)
    ]
    for path in (".venv", ".git", "tests", "bench", "hpsearch.db", "service/__pycache__/x.pyc"):
        if not dockerignored(path, patterns):
            errors.append(f".dockerignore does not exclude {path}")
    assert not errors, "\n".join(errors)


# --- the checks themselves can fail ---------------------------------------------------------

FAKE_DOCKERFILE = """\
FROM python:3.11-slim
# a comment
ENV HPS_PORT=8000 HPS_BOGUS="x y"
ENV HPS_LEGACY some value
ENV HPS_WORKERS=-1
RUN pip install torch==2.13.0 \\
    && hpsearch db upgrade --bogus-flag
HEALTHCHECK --interval=5s --retries=2 CMD hpsearch status 1 --url http://x --nope
CMD ["hpsearch", "serve", "--host", "0.0.0.0", "--port", "99999"]
"""


def test_dockerfile_parsing_forms() -> None:
    instructions = parse_dockerfile(FAKE_DOCKERFILE)
    keywords = [ins.keyword for ins in instructions]
    assert keywords == ["FROM", "ENV", "ENV", "ENV", "RUN", "HEALTHCHECK", "CMD"]
    assert instructions[4].line == 6
    assert dockerfile_env(instructions[1]) == {"HPS_PORT": "8000", "HPS_BOGUS": "x y"}
    assert dockerfile_env(instructions[2]) == {"HPS_LEGACY": "some value"}
    assert healthcheck_argv('--interval=5s CMD ["a", "b"]') == ["a", "b"]
    assert healthcheck_argv("NONE") is None
    assert dockerfile_argv("hpsearch serve") == ["/bin/sh", "-c", "hpsearch serve"]
    assert hpsearch_invocations(
        ["sh", "-ec", "A=1 hpsearch db upgrade && exec hpsearch serve --port 1; echo done"]
    ) == [["db", "upgrade"], ["serve", "--port", "1"]]
    assert hpsearch_invocations(["python", "-m", "service.cli", "worker"]) == [["worker"]]
    assert hpsearch_invocations(["python", "-c", "print('hpsearch serve')"]) == []


def test_dockerfile_checks_report_bogus_flags_and_variables() -> None:
    instructions = parse_dockerfile(FAKE_DOCKERFILE)
    cli = "\n".join(dockerfile_cli_errors(instructions))
    assert "Dockerfile:6 RUN" in cli and "--bogus-flag" in cli and "db upgrade --help" in cli
    assert "Dockerfile:8 HEALTHCHECK" in cli and "--nope" in cli
    assert "Dockerfile:9 CMD" in cli and "99999" in cli  # --port exists, the value is out of range
    env = "\n".join(dockerfile_env_errors(instructions))
    assert "Dockerfile:3 ENV: HPS_BOGUS is not a Settings field" in env
    assert "HPS_LEGACY is not a Settings field" in env
    assert "HPS_WORKERS='-1' is invalid" in env
    assert "HPS_PORT=" not in env and "HPS_PORT is" not in env
    shape = "\n".join(dockerfile_structure_errors(instructions))
    assert "non-root" in shape and "never copies" in shape


def _fake_compose() -> dict[str, Any]:
    return yaml.safe_load(
        """
x-env: &env
  HPS_DATABASE_URL: postgresql+psycopg://hps:hps@postgres:5432/hps
  HPS_NOT_A_SETTING: "1"
services:
  postgres:
    image: postgres:16
    volumes: ["/srv/pg:/var/lib/postgresql/data"]
  api:
    build: .
    command: hpsearch db upgrade && hpsearch serve --host 0.0.0.0
    environment:
      <<: *env
  worker:
    build: .
    container_name: the-worker
    ports: ["9000:9000"]
    command: ["sh", "-c", "hpsearch db upgrade && exec hpsearch wroker --device cpu"]
    environment: ["HPS_THREADS=0", "HPS_DATABASE_URL=postgresql+psycopg://hps:hps@postgres/hps"]
    depends_on: {postgres: {condition: service_healthy}}
  other:
    build: .
    command: [hpsearch, worker, --devices, cpu]
"""
    )


def test_compose_checks_report_bogus_commands_flags_and_variables() -> None:
    compose, instructions = _fake_compose(), parse_dockerfile(FAKE_DOCKERFILE)
    cli = "\n".join(compose_cli_errors(compose, instructions))
    # a compose string command has no shell: `&&` would reach hpsearch as an argument
    assert "services.api.command" in cli and "shell operator" in cli
    assert "no such subcommand `hpsearch wroker`" in cli
    assert "services.other.command" in cli and "flag --devices is not listed" in cli
    env = "\n".join(compose_env_errors(compose))
    assert "services.api.environment: HPS_NOT_A_SETTING is not a Settings field" in env
    assert "HPS_THREADS='0' is invalid" in env
    shape = "\n".join(compose_structure_errors(compose, instructions))
    assert "services.postgres needs a named volume" in shape
    assert "services.postgres has no healthcheck" in shape
    assert "services.worker sets container_name" in shape
    assert "services.worker sets ports" in shape
    assert "services.worker waits for postgres to be healthy" in shape
    assert "services.worker must depend on api" in shape
    assert "services.worker inherits the image HEALTHCHECK" in shape


def test_cli_check_accepts_good_and_rejects_bad_invocations() -> None:
    assert cli_errors(["worker", "--device", "cpu", "--threads", "1"], "here") == []
    assert cli_errors(["db", "upgrade", "--db=sqlite://"], "here") == []
    (group,) = cli_errors(["db"], "here")
    assert "`hpsearch db` is a command group" in group
    (extra,) = cli_errors(["db", "upgrade", "now"], "here")
    assert "rejected by the CLI" in extra and "now" in extra


@pytest.mark.parametrize(
    ("path", "ignored"),
    [(".venv/bin/python", True), ("tests", True), ("service/app.py", False), ("README.md", False)],
)
def test_dockerignore_matcher(path: str, ignored: bool) -> None:
    patterns = [".venv", "**/*.db", "tests", "*.md", "!README.md"]
    assert dockerignored(path, patterns) is ignored
