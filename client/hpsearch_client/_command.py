"""One trial's command, as ``hpsearch-agent`` runs it: in a process group of its own,
stopped as a group, its output read line by line (reports sent, other lines passed through
and kept as the trial's log tail)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO

from ._errors import ClientError, ServerError, TrialLost, TrialPruned
from ._protocol import read_line
from ._trial import Trial

__all__ = ["Command", "Run", "group_alive"]

LOG_LIMIT = 8192  # bytes of the command's output kept as the trial's log
LINE_LIMIT = 1 << 16  # longest line read at once; a longer one arrives in pieces


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies, which only wait to be
    reaped, do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


class Command:
    """The command of one trial, in its own process group, stopped as a group."""

    def __init__(self, argv: list[str], env: dict[str, str], grace: float) -> None:
        self.grace = grace
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.pgid = self.proc.pid
        self._lock = threading.Lock()
        self._stopper: threading.Thread | None = None

    def stop_soon(self) -> None:
        """Stop the group from a thread of its own (callers must not wait the grace)."""
        with self._lock:
            if self._stopper is None:
                self._stopper = threading.Thread(target=self.stop, daemon=True)
                self._stopper.start()

    def finish(self) -> None:
        """Stop whatever is left of the group and wait until it is gone."""
        self.stop_soon()
        assert self._stopper is not None
        self._stopper.join()

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL to what is left of it after the grace period."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while group_alive(self.pgid):
            if time.monotonic() >= deadline:
                self._signal(signal.SIGKILL)
                return
            time.sleep(0.05)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)


class _Tail:
    """The last ``LOG_LIMIT`` bytes of the command's output, from two threads."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            del self._data[:-LOG_LIMIT]

    def text(self) -> str:
        with self._lock:
            return self._data.decode("utf-8", "replace")


def _echo(stream: IO[str], chunk: bytes) -> None:
    """Pass a line through; a closed or broken stream (``agent | head``) only loses it: the
    command's pipe must still be read."""
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            buffer.write(chunk)
            buffer.flush()
        else:
            stream.write(chunk.decode("utf-8", "replace"))
            stream.flush()
    except (OSError, ValueError):
        pass


class Run:
    """Runs one trial's command: the output readers, the reports, the outcome."""

    def __init__(self, trial: Trial, command: Command) -> None:
        self.trial = trial
        self.command = command
        self.tail = _Tail()
        self.finals: dict[str, float | int] = {}
        self.error: str | None = None  # a report the server refused
        self.unreachable: ServerError | None = None
        assert command.proc.stdout is not None and command.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read_stdout, args=(command.proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(command.proc.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        trial._when_stopped(command.stop_soon)

    def wait(self) -> int:
        """Wait for the command, stop what is left of its group, read its output to the end;
        its exit status."""
        code = self.command.proc.wait()
        self.command.finish()
        self.join()
        return code

    def join(self) -> None:
        for reader in self._readers:
            reader.join()

    def _read_stdout(self, pipe: IO[bytes]) -> None:
        try:
            for raw in iter(lambda: pipe.readline(LINE_LIMIT), b""):
                line = read_line(raw.decode("utf-8", "replace"))
                if line is None:
                    self.tail.add(raw)
                    _echo(sys.stdout, raw)
                elif line.epoch is None:
                    self.finals.update(line.metrics)
                elif self.trial.state == "running" and self.error is None:
                    self._report(line.epoch, line.metrics)
        finally:
            pipe.close()
            self.trial.study._http.close_thread()

    def _report(self, epoch: int, metrics: dict[str, float | int]) -> None:
        try:
            self.trial.report(epoch, **metrics)
        except (TrialPruned, TrialLost):
            self.command.stop_soon()
        except ClientError as err:
            self.error = f"report of epoch {epoch} refused: {err}"
            self.command.stop_soon()
        except ServerError as err:
            self.unreachable = err
            self.command.stop_soon()
        except Exception as err:  # never leave the command's pipe unread
            self.error = f"the agent could not report epoch {epoch}: {err!r}"
            self.command.stop_soon()

    def _read_stderr(self, pipe: IO[bytes]) -> None:
        try:
            for raw in iter(lambda: pipe.readline(LINE_LIMIT), b""):
                self.tail.add(raw)
                _echo(sys.stderr, raw)
        finally:
            pipe.close()
