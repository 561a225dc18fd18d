"""``hpsearch agent STUDY [--count N] [--url URL] [--grace SECONDS] -- CMD ARGS...``: run a
command once per trial of an external study. The agent lives in the light client
distribution (``hpsearch_client.agent``, also installed as ``hpsearch-agent``); this command
hands it its arguments untouched, the ``--`` included, and is imported lazily.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand

__all__ = ["register_agent_command"]


class _RawArguments(TyperCommand):
    """Keeps the arguments as they were typed: click would drop the first ``--``, the
    boundary between the agent's options and the command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's vendored click
        ctx.meta["hpsearch_agent_argv"] = list(args)
        return super().parse_args(ctx, args)


def agent(ctx: typer.Context) -> None:
    """Run a command once per trial of an external study (see `hpsearch agent --help`)."""
    from hpsearch_client.agent import main

    argv: list[str] = ctx.meta["hpsearch_agent_argv"]
    raise typer.Exit(main(argv, prog="hpsearch agent"))


def register_agent_command(app: typer.Typer) -> None:
    settings: dict[str, Any] = {
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],  # --help goes to the agent's own parser
    }
    app.command("agent", cls=_RawArguments, context_settings=settings)(agent)
