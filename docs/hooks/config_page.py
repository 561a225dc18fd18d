"""MkDocs hook: the configuration page's table of ``HPS_*`` settings, made from
``service.settings.Settings`` each time the site is built, so it cannot drift from the code.

``docs/configuration.md`` holds the prose and two markers: ``<!-- settings-table -->``
becomes a table of every field (its variable, default, type and bounds, and description),
``<!-- otel-switches -->`` the variables that turn FastAPI's OpenTelemetry on
(``service.app.OTEL_SWITCHES``). A missing marker, or a field with no description and no
entry in ``UNDESCRIBED``, fails the build.

    .venv/bin/python docs/hooks/config_page.py    # print the table
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.settings import Settings  # noqa: E402

PAGE = "configuration.md"
TABLE_MARKER = "<!-- settings-table -->"
OTEL_MARKER = "<!-- otel-switches -->"

# Fields that carry no description in Settings, described from the code that reads them
# (the help of `hpsearch serve --host/--port`).
UNDESCRIBED = {
    "host": "interface `hpsearch serve` binds",
    "port": "TCP port `hpsearch serve` listens on",
}

_BOUNDS: tuple[tuple[type, str, str], ...] = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)


def _type(annotation: Any) -> str:
    """``int``, ``float or unset``, ``on | off``: a field's type as the user sets it."""
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        unset = len(kinds) < len(typing.get_args(annotation))
        return " or ".join(_type(a) for a in kinds) + (" or unset" if unset else "")
    return getattr(annotation, "__name__", str(annotation))


def _bounds(metadata: list[Any]) -> list[str]:
    found = []
    for item in metadata:
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                found.append(f"{sign} {getattr(item, attribute):g}")
    return found


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    """A Markdown table of every ``Settings`` field, in the class's order."""
    prefix = Settings.model_config.get("env_prefix", "")
    stale = set(UNDESCRIBED) - set(Settings.model_fields)
    if stale:
        raise ValueError(f"UNDESCRIBED names fields Settings no longer has: {sorted(stale)}")
    rows = [
        "| variable | default | type | what it sets |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        description = field.description or UNDESCRIBED.get(name)
        if not description:
            raise ValueError(
                f"Settings.{name} has no description: add one, or an entry to UNDESCRIBED"
            )
        if name in UNDESCRIBED and field.description:
            raise ValueError(f"Settings.{name} has a description now: drop it from UNDESCRIBED")
        kind = ", ".join([_type(field.annotation), *_bounds(field.metadata)])
        rows.append(
            f"| `{prefix}{name.upper()}` | {_default(field.default)} | {kind} "
            f"| {_cell(description)} |"
        )
    return "\n".join(rows)


def otel_switches() -> str:
    from service.app import OTEL_SWITCHES

    names = [f"`{name}`" for name in OTEL_SWITCHES]
    return ", ".join(names[:-1]) + " or " + names[-1]


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the configuration page's markers."""
    if page.file.src_uri != PAGE:
        return markdown
    for marker in (TABLE_MARKER, OTEL_MARKER):
        if markdown.count(marker) != 1:
            raise PluginError(f"docs/{PAGE} must hold {marker} exactly once")
    try:
        table = settings_table()
    except ValueError as error:
        raise PluginError(f"docs/{PAGE}: {error}") from error
    return markdown.replace(TABLE_MARKER, table).replace(OTEL_MARKER, otel_switches())


if __name__ == "__main__":
    print(settings_table())
