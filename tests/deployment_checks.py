"""Parsers and checks behind tests/test_deployment.py: the Dockerfile, .dockerignore and
docker-compose.yml read as data and checked against the real CLI and the real settings. Each
check returns one-line error messages naming the file, place and culprit."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from service.cli import app
from service.settings import Settings
from tests.deployment_files import (
    ANSI,
    COMPOSE,
    DOCKERFILE,
    HELP_ENV,
    PYPROJECT,
    ROOT,
    SHELL_OPERATORS,
    Instruction,
    compose_argv,
    compose_healthcheck_argv,
    dockerfile_argv,
    dockerfile_env,
    env_entries,
    healthcheck_argv,
    hpsearch_invocations,
    parse_dockerfile,
)

# --- the CLI --------------------------------------------------------------------------------


@cache
def _root_command() -> Any:
    # typer >= 0.26 vendors click (typer._click): duck-type groups, catch TyperException.
    return typer.main.get_command(app)


def _subcommands(command: Any) -> dict[str, Any] | None:
    """A group's subcommands by name; None for a plain command."""
    commands = getattr(command, "commands", None)
    return commands if isinstance(commands, dict) else None


@cache
def cli_help(path: tuple[str, ...]) -> tuple[int, str]:
    """(exit code, plain text) of ``hpsearch <path> --help``, rendered 200 columns wide."""
    result = CliRunner().invoke(app, [*path, "--help"], env=HELP_ENV, terminal_width=200)
    return result.exit_code, ANSI.sub("", result.output)


def _is_flag(token: str) -> bool:
    return token.startswith("-") and token != "-" and not re.fullmatch(r"-\d+(\.\d*)?", token)


def cli_errors(args: list[str], where: str) -> list[str]:
    """Problems with running ``hpsearch <args>``, each one line naming ``where``."""
    line = shlex.join(["hpsearch", *args])
    operators = sorted({arg for arg in args if arg in SHELL_OPERATORS})
    if operators:
        return [
            f"{where}: `{line}` passes shell operator(s) {operators} to hpsearch as arguments"
            " (no shell runs a compose string or exec-form command; use sh -c '...')"
        ]
    command = _root_command()
    path: list[str] = []
    flags: list[tuple[tuple[str, ...], str]] = []
    leaf_start = 0
    for index, token in enumerate(args):
        if token == "--":
            break
        if _is_flag(token):
            flags.append((tuple(path), token.split("=", 1)[0]))
        elif (subcommands := _subcommands(command)) is not None:
            sub = subcommands.get(token)
            if sub is None:
                known = ", ".join(sorted(subcommands))
                name = " ".join(["hpsearch", *path, token])
                return [f"{where}: `{line}`: no such subcommand `{name}` (known: {known})"]
            path.append(token)
            command = sub
            leaf_start = index + 1
    name = " ".join(["hpsearch", *path])
    if _subcommands(command) is not None:
        return [f"{where}: `{line}`: `{name}` is a command group, not a command"]
    errors: list[str] = []
    for level in {tuple(path), *(level for level, _ in flags)}:
        code, _ = cli_help(level)
        if code != 0:
            errors.append(f"{where}: `{' '.join(['hpsearch', *level])} --help` exited {code}")
    for level, flag in flags:
        _, text = cli_help(level)
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
            errors.append(
                f"{where}: `{line}`: flag {flag} is not listed by"
                f" `{' '.join(['hpsearch', *level])} --help`"
            )
    if not errors:
        try:
            command.make_context(name, list(args[leaf_start:]))
        except typer.TyperException as exc:
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            errors.append(f"{where}: `{line}` is rejected by the CLI: {message}")
    return errors


def command_errors(argv: list[str] | None, where: str) -> tuple[int, list[str]]:
    """(number of hpsearch invocations found, their problems) for one command."""
    if argv is None:
        return 0, []
    invocations = hpsearch_invocations(argv)
    return len(invocations), [
        error for invocation in invocations for error in cli_errors(invocation, where)
    ]


# --- settings -------------------------------------------------------------------------------


def hps_env_errors(env: Mapping[str, str | None], where: str) -> list[str]:
    """Every ``HPS_*`` name must be a Settings field and its value must validate."""
    fields = Settings.model_fields
    errors: list[str] = []
    for key, value in env.items():
        if not key.upper().startswith("HPS_"):
            continue
        field = key[4:].lower()
        if field not in fields:
            known = ", ".join(f"HPS_{name.upper()}" for name in fields)
            errors.append(f"{where}: {key} is not a Settings field (known: {known})")
        elif value is not None and "$" not in value:
            try:
                Settings.model_validate({field: value})
            except ValidationError as exc:
                problem = "; ".join(error["msg"] for error in exc.errors())
                errors.append(f"{where}: {key}={value!r} is invalid: {problem}")
    return errors


# --- the whole files ------------------------------------------------------------------------


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: top level must be a mapping"
    return data


def load_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    return parse_dockerfile(path.read_text(encoding="utf-8"))


def _last(instructions: list[Instruction], keyword: str) -> Instruction | None:
    matches = [ins for ins in instructions if ins.keyword == keyword]
    return matches[-1] if matches else None


def image_start_argv(instructions: list[Instruction]) -> list[str] | None:
    """What a container of this image runs by default: ENTRYPOINT + CMD (exec form)."""
    entrypoint, cmd = _last(instructions, "ENTRYPOINT"), _last(instructions, "CMD")
    if entrypoint is None:
        return dockerfile_argv(cmd.args) if cmd else None
    argv = dockerfile_argv(entrypoint.args)
    if argv[:2] == ["/bin/sh", "-c"] or cmd is None:
        return argv
    return argv + dockerfile_argv(cmd.args)


def _builds_this_image(service: Mapping[str, Any]) -> bool:
    build = service.get("build")
    if isinstance(build, Mapping):
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    else:
        context, dockerfile = build, "Dockerfile"
    return context in (".", "./") and dockerfile in ("Dockerfile", "./Dockerfile")


def dockerfile_cli_errors(instructions: list[Instruction]) -> list[str]:
    errors: list[str] = []
    for ins in instructions:
        if ins.keyword in ("CMD", "ENTRYPOINT", "RUN"):
            errors += command_errors(dockerfile_argv(ins.args), ins.where)[1]
        elif ins.keyword == "HEALTHCHECK":
            errors += command_errors(healthcheck_argv(ins.args), ins.where)[1]
    return errors


def compose_cli_errors(
    compose: Mapping[str, Any],
    instructions: list[Instruction],
    must_run_hpsearch: Iterable[str] = ("api", "worker"),
) -> list[str]:
    """Check each service's effective start command and healthcheck; the services in
    ``must_run_hpsearch`` must actually run hpsearch (so the check is never vacuous)."""
    errors: list[str] = []
    required = set(must_run_hpsearch)
    for name, service in (compose.get("services") or {}).items():
        where = f"docker-compose.yml services.{name}"
        ours = _builds_this_image(service)
        entrypoint = compose_argv(service.get("entrypoint"))
        command = compose_argv(service.get("command"))
        if entrypoint is None and ours:
            image_entry = _last(instructions, "ENTRYPOINT")
            entrypoint = dockerfile_argv(image_entry.args) if image_entry else None
        if command is None and ours and service.get("entrypoint") is None:
            start = image_start_argv(instructions)
        else:
            start = (entrypoint or []) + (command or []) or None
        found, problems = command_errors(start, f"{where}.command")
        errors += problems
        if name in required and not found:
            shown = shlex.join(start) if start else "nothing"
            errors.append(f"{where}: runs {shown!r}, no hpsearch command found in it")
        probe = compose_healthcheck_argv(service.get("healthcheck"))
        errors += command_errors(probe, f"{where}.healthcheck")[1]
    return errors


def compose_env_errors(compose: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    for name, service in (compose.get("services") or {}).items():
        where = f"docker-compose.yml services.{name}.environment"
        errors += hps_env_errors(env_entries(service.get("environment")), where)
    return errors


def dockerfile_env_errors(instructions: list[Instruction]) -> list[str]:
    errors: list[str] = []
    for ins in instructions:
        if ins.keyword == "ENV":
            errors += hps_env_errors(dockerfile_env(ins), ins.where)
    return errors


def _named_volume_targets(service: Mapping[str, Any], declared: Mapping[str, Any]) -> set[str]:
    targets: set[str] = set()
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            if volume.get("type", "volume") != "volume":
                continue
            source, target = str(volume.get("source", "")), str(volume.get("target", ""))
        if source and source in declared:
            targets.add(target)
    return targets


def _has_healthcheck(service: Mapping[str, Any], instructions: list[Instruction]) -> bool:
    if service.get("healthcheck") is not None:
        return compose_healthcheck_argv(service["healthcheck"]) is not None
    image_check = _last(instructions, "HEALTHCHECK")
    return (
        _builds_this_image(service)
        and image_check is not None
        and healthcheck_argv(image_check.args) is not None
    )


def compose_structure_errors(
    compose: Mapping[str, Any], instructions: list[Instruction]
) -> list[str]:
    where = "docker-compose.yml"
    services: Mapping[str, Any] = compose.get("services") or {}
    missing = sorted({"postgres", "api", "worker"} - set(services))
    if missing:
        return [f"{where}: missing services {missing} (have {sorted(services)})"]
    errors: list[str] = []
    postgres, api, worker = services["postgres"], services["api"], services["worker"]
    declared = compose.get("volumes") or {}
    if "/var/lib/postgresql/data" not in _named_volume_targets(postgres, declared):
        errors.append(
            f"{where}: services.postgres needs a named volume (declared under top-level"
            " volumes:) mounted at /var/lib/postgresql/data"
        )
    if not _has_healthcheck(postgres, instructions):
        errors.append(f"{where}: services.postgres has no healthcheck")
    for key in ("container_name", "ports"):
        if key in worker:
            errors.append(f"{where}: services.worker sets {key}, so `--scale worker=N` cannot work")
    for name in ("api", "worker"):
        if not _builds_this_image(services[name]):
            errors.append(f"{where}: services.{name} must build this repo's Dockerfile (build: .)")
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if not isinstance(depends, Mapping):
            continue
        for target, spec in depends.items():
            healthy = isinstance(spec, Mapping) and spec.get("condition") == "service_healthy"
            if healthy and not _has_healthcheck(services.get(target) or {}, instructions):
                errors.append(
                    f"{where}: services.{name} waits for {target} to be healthy,"
                    f" but {target} has no healthcheck"
                )
    if "postgres" not in (api.get("depends_on") or {}):
        errors.append(f"{where}: services.api must depend on postgres")
    if "api" not in (worker.get("depends_on") or {}):
        errors.append(f"{where}: services.worker must depend on api (which migrates the db)")
    if _builds_this_image(worker) and "healthcheck" not in worker:
        image_check = _last(instructions, "HEALTHCHECK")
        if image_check is not None and healthcheck_argv(image_check.args) is not None:
            errors.append(
                f"{where}: services.worker inherits the image HEALTHCHECK ({image_check.where}),"
                " but a worker serves no HTTP: set `healthcheck: {disable: true}`"
            )
    urls = {}
    for name in ("api", "worker"):
        url = env_entries(services[name].get("environment")).get("HPS_DATABASE_URL")
        if url is None:
            errors.append(f"{where}: services.{name} does not set HPS_DATABASE_URL")
            continue
        urls[name] = url
        parsed = make_url(url)
        if not parsed.drivername.startswith("postgresql") or parsed.host not in services:
            errors.append(
                f"{where}: services.{name} HPS_DATABASE_URL={url!r} should be a postgresql"
                " URL whose host is a compose service"
            )
    if len(set(urls.values())) > 1:
        errors.append(f"{where}: api and worker use different databases: {urls}")
    return errors


def _pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def _torch_pin() -> str:
    deps: list[str] = _pyproject()["project"]["dependencies"]
    pins = [dep.replace(" ", "") for dep in deps if re.match(r"torch\s*==", dep)]
    assert pins, "pyproject.toml: torch is not pinned with =="
    return pins[0]


def _copy_sources(ins: Instruction) -> list[str]:
    value = ins.args.strip()
    words = json.loads(value) if value.startswith("[") else shlex.split(value)
    words = [word for word in words if not word.startswith("--")]
    return [word.rstrip("/") or "." for word in words[:-1]]


def dockerfile_structure_errors(instructions: list[Instruction]) -> list[str]:
    errors: list[str] = []
    base = _last(instructions, "FROM")
    if base is None or not base.args.split()[0].startswith("python:3.11"):
        errors.append("Dockerfile: base image must be python:3.11(-slim)")
    user = _last(instructions, "USER")
    if user is None or user.args.split(":")[0].strip() in ("root", "0", ""):
        errors.append("Dockerfile: the last USER must be a non-root user")
    torch_pin = _torch_pin()
    torch_runs = [
        ins for ins in instructions if ins.keyword == "RUN" and re.search(r"\btorch==", ins.args)
    ]
    if not torch_runs:
        errors.append(f"Dockerfile: no RUN installs {torch_pin} (pinned like pyproject.toml)")
    for ins in torch_runs:
        pinned = re.findall(r"\btorch==[\w.+]+", ins.args)
        if pinned != [torch_pin]:
            errors.append(f"{ins.where}: installs {pinned}, pyproject.toml pins {torch_pin}")
    copies = [ins for ins in instructions if ins.keyword in ("COPY", "ADD")]
    copied = {source for ins in copies for source in _copy_sources(ins)}
    packages = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {"pyproject.toml", _pyproject()["project"]["readme"]}
    needed |= {pattern.rstrip("*").rstrip(".") for pattern in packages}
    for source in sorted(needed - copied):
        errors.append(f"Dockerfile: never copies {source}, which `pip install .` needs")
    for source in sorted(copied):
        if source != "." and not (ROOT / source).exists():
            errors.append(f"Dockerfile: copies {source}, which does not exist in the repo")
    code_copies = [ins.line for ins in copies if set(_copy_sources(ins)) & (needed - {"."})]
    if torch_runs and code_copies and torch_runs[0].line > min(code_copies):
        errors.append(
            f"{torch_runs[0].where}: torch is installed after the code is copied (line"
            f" {min(code_copies)}), so every code change reinstalls torch"
        )
    check = _last(instructions, "HEALTHCHECK")
    if check is None or healthcheck_argv(check.args) is None:
        errors.append("Dockerfile: no HEALTHCHECK")
    elif "/health" not in check.args:
        errors.append(f"{check.where}: does not probe /health")
    return errors
