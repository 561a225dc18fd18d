"""What passes between ``hpsearch-agent`` and its command: a trial's parameters written into
the command's arguments, and the JSON lines of its stdout read as reports or final metrics."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["ReportLine", "command_for", "param_text", "read_line"]

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
NONFINITE = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
NONFINITE |= {"infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}


def param_text(value: object) -> str:
    """How a parameter's value is written into an argument."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(param_text(v) for v in value)
    return json.dumps(value)


def command_for(template: Sequence[str], params: Mapping[str, object]) -> list[str]:
    """``template`` with each ``{name}`` of a parameter replaced by its value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return param_text(params[name]) if name in params else match.group(0)

    return [PLACEHOLDER.sub(value, arg) for arg in template]


@dataclass(frozen=True)
class ReportLine:
    """A JSON line of the command's: a report (``epoch`` set) or final metrics."""

    epoch: int | None
    metrics: dict[str, float | int]


def _number(value: object) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return NONFINITE.get(value.strip().lower())
    return None


def read_line(text: str) -> ReportLine | None:
    """A report or final metrics, or None for a line that passes through: not a JSON
    object, an ``epoch`` that is not an integer, or no number values at all."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    if not isinstance(found, dict):
        return None
    has_epoch = "epoch" in found
    epoch = found.pop("epoch", None)
    metrics = {}
    for name, value in found.items():
        number = _number(value)
        if number is not None:
            metrics[str(name)] = number
    if not metrics:
        return None
    if not has_epoch:
        return ReportLine(None, metrics)
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        return None
    return ReportLine(epoch, metrics)
