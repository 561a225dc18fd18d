"""Reading a spec file for ``hpsearch submit``: YAML or JSON, a path or ``-`` for stdin; any
problem is one ``error:`` line and exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)


def _yaml_error_line(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "parse error"
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc)


def load_spec(source: str) -> dict[str, Any]:
    """Read a YAML or JSON spec from a path (``-`` = stdin); exit 2 with one line on error."""
    label = "<stdin>" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"spec file not found: {source}")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read spec file {label}: {exc}")
    try:
        spec = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        _fail(f"invalid JSON in {label}: {exc}")
    except yaml.YAMLError as exc:
        _fail(f"invalid YAML in {label}: {_yaml_error_line(exc)}")
    if not isinstance(spec, dict):
        _fail(f"spec in {label} must be a mapping, got {type(spec).__name__}")
    return spec


__all__ = ["load_spec"]
