"""CSV cells safe to open in a spreadsheet (standard library only: the CLI uses it too).

Text cells that start with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) get a
leading ``'`` so a spreadsheet shows them instead of running them as formulas (OWASP's
advice against CSV injection); numbers are written as numbers, at full precision; layer
sizes as ``128-64``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    is_list = isinstance(value, list | tuple)
    text = "-".join(csv_cell(v) for v in value) if is_list else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


__all__ = ["FORMULA_PREFIXES", "csv_cell"]
