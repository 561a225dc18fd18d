"""``hpsearch-agent STUDY [--count N] [--url URL] [--grace SECONDS] -- CMD ARGS...``
(also ``hpsearch agent ...``): run an unchanged command once per trial of a study.

For each trial it claims, the agent runs CMD with:

- every argument's ``{name}``, for a parameter ``name`` of the trial, replaced by its value:
  ints as such, floats by ``repr`` (``0.0031``), booleans ``true``/``false``, strings as they
  are, lists (``layers``) joined by commas (``[64, 32]`` -> ``64,32``), anything else as JSON;
  other braces are left alone;
- the parameters as JSON in ``$HPSEARCH_PARAMS`` and in the file ``$HPSEARCH_PARAMS_FILE``,
  the study id in ``$HPSEARCH_STUDY``, the trial number in ``$HPSEARCH_TRIAL``, its budget
  slot in ``$HPSEARCH_SLOT`` (the same for every attempt at the same configuration: key a
  checkpoint of your own by study and slot to resume a retried attempt), and
  ``PYTHONUNBUFFERED=1`` unless set, so a Python command's lines arrive as it prints them.

The command runs in its own process group. Its stdout is read line by line: a line that is a
JSON object with an integer ``"epoch"`` is a report (``{"epoch": 3, "train_loss": 0.41,
"val_auc": 0.88}``), a JSON object without ``"epoch"`` gives final metrics (only the number
values count, and a line with none is an ordinary line); every other line, and all of stderr,
passes through to the agent's own stdout/stderr and into the trial's log tail (last 8 KB).

When the server says prune (answering a report or a heartbeat) or the lease is lost, the
command's whole group gets SIGTERM, then SIGKILL after ``--grace`` seconds; so does whatever
is left of the group when the command itself exits. Exit 0 completes the trial with the last
report's metrics updated by the final ones (failed if the objective is missing); another exit
fails it (no retry) with the log tail and a reason like ``exit status 3``. SIGTERM or SIGINT to
the agent stops the command the same way, hands the trial back (failed with ``retry: true``)
and exits 143 or 130. The agent exits 0 when the study has nothing left (or ``--count``
trials ran), 1 when the server refuses or cannot be reached, 2 on bad arguments, 126/127 when
the command cannot be started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._command import Command, Run, group_alive
from ._errors import ClientError, HpsError, TrialLost
from ._protocol import ReportLine, command_for, param_text, read_line
from ._signals import Signals, stop_signals
from ._study import Study
from ._trial import HAND_BACK_RETRY_S, Trial

__all__ = [
    "Options",
    "ReportLine",
    "command_for",
    "group_alive",
    "main",
    "param_text",
    "parse_args",
    "read_line",
]


# --- the command line -----------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    study: int
    command: list[str]
    count: int | None = None
    url: str | None = None
    grace: float = 10.0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        usage="%(prog)s STUDY [--count N] [--url URL] [--grace SECONDS] -- CMD [ARGS...]",
        description=(
            "Claim trials of an external study and run CMD once per trial: {name} in its "
            "arguments becomes the parameter's value (lists as 64,32), $HPSEARCH_PARAMS holds "
            'them all as JSON. stdout lines that are JSON objects with an integer "epoch" '
            "are reports, JSON objects without one are final metrics."
        ),
        epilog="The API key comes from $HPS_API_KEY.",
    )
    parser.add_argument("study", type=_positive_int, metavar="STUDY", help="study id")
    parser.add_argument(
        "--count", type=_positive_int, default=None, help="run at most N trials, then exit 0"
    )
    parser.add_argument(
        "--url", default=None, help="server base URL (default $HPS_URL or http://127.0.0.1:8000)"
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        help="seconds between SIGTERM and SIGKILL when stopping the command (default 10)",
    )
    return parser


def parse_args(argv: Sequence[str], prog: str | None = None) -> Options:
    """The agent's options; the command is everything after the first ``--``. Exits 2 (via
    argparse) on bad arguments, 0 after ``--help``."""
    parser = _parser(prog)
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parsed = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        parser.error("no command: give it after --, e.g. -- python train.py --lr {lr}")
    return Options(parsed.study, command, parsed.count, parsed.url, parsed.grace)


# --- one trial ------------------------------------------------------------------------------


class _Stopped(Exception):
    """The agent was told to stop (SIGTERM/SIGINT); ``signum`` says by which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _say(message: str) -> None:
    print(f"hpsearch agent: {message}", file=sys.stderr, flush=True)


def _env(trial: Trial, params_file: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["HPSEARCH_PARAMS"] = json.dumps(trial.params)
    env["HPSEARCH_PARAMS_FILE"] = params_file
    env["HPSEARCH_STUDY"] = str(trial.study_id)
    env["HPSEARCH_TRIAL"] = str(trial.number)
    env["HPSEARCH_SLOT"] = str(trial.slot)
    return env


def _describe(params: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={param_text(value)}" for name, value in params.items())


def _shown(metrics: Mapping[str, float | int]) -> str:
    return " ".join(f"{name}={value:.6g}" for name, value in metrics.items())


class _CannotStart(Exception):
    """The command could not be started; ``code`` is the agent's exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run_trial(trial: Trial, options: Options, seen: Signals) -> None:
    """Run the command for one trial and end the trial as its run says. Raises
    :class:`_Stopped` after handing the trial back when the agent is told to stop,
    :class:`_CannotStart` when the command cannot be started, :class:`ServerError` when the
    server could not be reached."""
    command: Command | None = None
    run: Run | None = None
    params_file: str | None = None
    try:
        _say(f"trial {trial.number}: {_describe(trial.params)}")
        argv = command_for(options.command, trial.params)
        with tempfile.NamedTemporaryFile(
            "w", prefix=f"hpsearch-trial-{trial.number}-", suffix=".json", delete=False
        ) as f:
            params_file = f.name
            json.dump(trial.params, f)
        try:
            command = Command(argv, _env(trial, params_file), options.grace)
        except OSError as err:
            reason = f"the agent could not start {argv[0]!r}: {err}"
            trial._fail_quietly(reason, True, None, HAND_BACK_RETRY_S)
            code = 127 if isinstance(err, FileNotFoundError) else 126
            raise _CannotStart(reason, code) from None
        run = Run(trial, command)
        _end(trial, run, run.wait())
    except KeyboardInterrupt:
        signum = seen.signum or signal.SIGINT
        if command is not None:
            command.finish()
        if run is not None:
            run.join()
        log = run.tail.text() if run is not None else None
        name = signal.Signals(signum).name
        trial._fail_quietly(f"agent stopped by {name}", True, log, HAND_BACK_RETRY_S)
        raise _Stopped(signum) from None
    finally:
        trial._stop_heartbeat()
        if params_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(params_file)


def _end(trial: Trial, run: Run, code: int) -> None:
    """End the trial after its command exited with ``code``."""
    log = run.tail.text()
    if trial.state != "running":  # pruned or lost: the server already ended it
        _say(f"trial {trial.number} {trial.state}: {trial.reason}")
        return
    if run.unreachable is not None:
        trial._fail_quietly("the server could not be reached", True, log, HAND_BACK_RETRY_S)
        raise run.unreachable
    metric = trial.metric
    try:
        if run.error is not None:
            trial.fail(run.error, log=log)
        elif code == 0 and metric is not None and metric not in {**trial.metrics, **run.finals}:
            trial.fail(f"exit status 0 but no {metric!r} was reported", log=log)
        elif code == 0:
            value = trial.complete(**run.finals)
            _say(f"trial {trial.number} complete: {_shown(trial.metrics)} (value {value})")
            return
        elif code > 0:
            trial.fail(f"exit status {code}", log=log)
        else:
            trial.fail(f"killed by {signal.Signals(-code).name}", log=log)
    except TrialLost as err:
        _say(f"trial {trial.number} lost: {err}")
        return
    except ClientError as err:  # e.g. a metric the server does not accept
        trial._fail_quietly(f"the server refused the result: {err}", False, log, None)
    _say(f"trial {trial.number} {trial.state}: {trial.reason}")


# --- the main loop --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """The agent's command line; returns its exit status (the console script exits with
    it)."""
    options = parse_args(sys.argv[1:] if argv is None else argv, prog)
    try:
        study = Study(options.url, options.study, None)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with stop_signals() as seen:
        done = 0
        try:
            while options.count is None or done < options.count:
                trial = study.claim()
                if trial is None:
                    _say(f"study {options.study} has nothing left: {study.ended}")
                    break
                run_trial(trial, options, seen)
                done += 1
        except KeyboardInterrupt:
            return 128 + (seen.signum or signal.SIGINT)
        except _Stopped as stopped:
            return 128 + stopped.signum
        except _CannotStart as err:
            print(f"error: {err}", file=sys.stderr)
            return err.code
        except HpsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
