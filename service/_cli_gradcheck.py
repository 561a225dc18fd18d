"""``hpsearch gradcheck SPEC``: a local command (no server) that checks backprop against
finite differences on configurations of a spec's space. torch and the search machinery
are imported inside the command, so the client commands never pay for them.

Exit 0 when every parameter tensor of every configuration is within the tolerance, 1 when
any is not, 2 for a spec file that cannot be read or is not a valid spec.
"""

from __future__ import annotations

from typing import Annotated

import typer

from service._cli_common import fail
from service.spec_files import load_spec

__all__ = ["register_gradcheck_command"]


def gradcheck(
    spec: Annotated[str, typer.Argument(help="YAML or JSON spec file ('-' reads stdin).")],
    trials: Annotated[
        int, typer.Option("--trials", min=1, max=1000, help="Configurations to check.")
    ] = 3,
) -> None:
    """Check backprop against centred finite differences (float64, dropout off) for the
    first N configurations the spec's search would train; print the relative difference
    ||g_fd - g_bp|| / (||g_fd|| + ||g_bp||) per parameter tensor."""
    body = load_spec(spec)
    from pydantic import ValidationError

    from search.spec import ExperimentSpec

    try:
        parsed = ExperimentSpec.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid spec {spec}: {problems}", 2)
    from models.gradcheck import TOLERANCE
    from search.gradcheck import check_spec

    try:
        checks = check_spec(parsed, trials)
    except ValueError as exc:
        fail(str(exc), 2)
    for check in checks:
        typer.echo(f"configuration {check.slot}: {_knobs(check.knobs)}")
        for t in check.tensors:
            verdict = "ok" if t.ok else "FAIL"
            skipped = f", {t.skipped} skipped at kinks" if t.skipped else ""
            typer.echo(
                f"  {t.name:<28} {t.relative_difference:.2e}  {verdict}"
                f"  ({t.checked} elements{skipped})"
            )
    bad = [c.slot for c in checks if not c.ok]
    if bad:
        fail(f"gradients differ by more than {TOLERANCE:g} in configurations {bad}", 1)
    typer.echo(f"all {len(checks)} configurations within {TOLERANCE:g}")


def _knobs(knobs: dict[str, object]) -> str:
    shown = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items()]
    return ", ".join(shown) or "(no searched knobs)"


def register_gradcheck_command(app: typer.Typer) -> None:
    app.command("gradcheck")(gradcheck)
