"""Service: the HTTP face of hpsearch (REST API, CLI, settings).

Kept import-light: the CLI's client commands must start without torch or optuna.
"""

from __future__ import annotations

__all__: list[str] = []
