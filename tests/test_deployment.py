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

import json
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from service.cli import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
PYPROJECT = ROOT / "pyproject.toml"

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})
SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", "\n"})
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HELP_ENV = {"COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1", "TERM": "dumb"}


# --- reading the files ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    line: int
    keyword: str
    args: str

    @property
    def where(self) -> str:
        return f"Dockerfile:{self.line} {self.keyword}"


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; ``\\`` continues a line, comment and blank lines inside a
    continuation are dropped (as Docker does)."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(parts).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    if parts:
        keyword, _, args = " ".join(parts).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
    return instructions


def dockerfile_argv(args: str) -> list[str]:
    """The argv Docker runs for a CMD/ENTRYPOINT/RUN argument: a JSON array is the exec form,
    anything else the shell form (``/bin/sh -c <string>``)."""
    text = args.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    return ["/bin/sh", "-c", text]


def healthcheck_argv(args: str) -> list[str] | None:
    """The probe of a Dockerfile ``HEALTHCHECK [--opt=v ...] CMD ...``; None for ``NONE``."""
    rest = re.sub(r"^(?:--[\w-]+(?:=\S+)?\s+)*", "", args.strip())
    keyword, _, command = rest.partition(" ")
    if keyword.upper() == "NONE":
        return None
    if keyword.upper() != "CMD":
        raise ValueError(f"HEALTHCHECK without CMD: {args!r}")
    return dockerfile_argv(command)


def compose_healthcheck_argv(healthcheck: Mapping[str, Any] | None) -> list[str] | None:
    """A compose healthcheck's probe as argv; None when absent or disabled."""
    if not healthcheck or healthcheck.get("disable"):
        return None
    test = healthcheck.get("test")
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD":
        return [str(item) for item in test[1:]]
    return [str(item) for item in test]


def compose_argv(value: Any) -> list[str] | None:
    """A compose ``command``/``entrypoint``: a list is used as is; a string is split like
    compose does (shell words, but NOT run through a shell)."""
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, split at ``&& || ; | & ( )`` and newlines."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|()\n"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def _shell_script_index(argv: list[str]) -> int | None:
    """Index of the script in ``sh [-opts] -c SCRIPT``, if argv is one."""
    for index, arg in enumerate(argv[1:], 1):
        if arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
            return index + 1 if index + 1 < len(argv) else None
        if not arg.startswith("-"):
            return None
    return None


def hpsearch_invocations(argv: list[str]) -> list[list[str]]:
    """The argument lists (after the program name) of every ``hpsearch`` run by ``argv``:
    directly, as ``python -m service.cli``, or inside ``sh -c`` scripts (recursively)."""
    args = list(argv)
    while args and (args[0] in ("exec", "env", "nohup") or ENV_ASSIGNMENT.match(args[0])):
        args.pop(0)
    if not args:
        return []
    program = PurePosixPath(args[0]).name
    if program == "hpsearch":
        return [args[1:]]
    if program.startswith("python") and args[1:3] == ["-m", "service.cli"]:
        return [args[3:]]
    if program in SHELLS:
        index = _shell_script_index(args)
        if index is not None:
            return [
                invocation
                for command in shell_commands(args[index])
                for invocation in hpsearch_invocations(command)
            ]
    return []


def env_entries(environment: Any) -> dict[str, str | None]:
    """A compose ``environment`` (mapping or ``KEY=VALUE`` list) as a dict; None = passed
    through from the host."""
    if environment is None:
        return {}
    if isinstance(environment, Mapping):
        return {str(k): None if v is None else str(v) for k, v in environment.items()}
    entries: dict[str, str | None] = {}
    for item in environment:
        key, sep, value = str(item).partition("=")
        entries[key] = value if sep else None
    return entries


def dockerfile_env(instruction: Instruction) -> dict[str, str]:
    """``ENV A=1 B="x y"`` or the legacy ``ENV A 1 2`` (one variable, rest of line)."""
    first, _, rest = instruction.args.partition(" ")
    if "=" not in first:
        return {first: rest.strip()}
    entries: dict[str, str] = {}
    for word in shlex.split(instruction.args):
        key, _, value = word.partition("=")
        entries[key] = value
    return entries


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


# --- .dockerignore --------------------------------------------------------------------------


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` (or a folder above it) out of the build context."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = str(PurePosixPath(pattern.strip("/"))) if pattern.strip("/") else ""
        regex = _ignore_regex(pattern)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


def read_dockerignore(path: Path = DOCKERIGNORE) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


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
