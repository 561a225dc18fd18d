"""Reading the deployment files as data: Dockerfile instructions, command lines, compose
environments and .dockerignore patterns (used by tests/deployment_checks.py)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

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
