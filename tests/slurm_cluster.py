"""A real single-node Slurm for the tests: Debian's munged, slurmctld and slurmd started as
root by a fixture with a generated ``slurm.conf`` (own ports, state, spool and log
directories under one temporary directory), never by systemd, and stopped by pid.

No cgroups anywhere (``proctrack/linuxproc``, ``task/none``, no accounting), so it runs in
containers without a writable cgroup tree. The node has this machine's ``nproc`` CPUs; the
partition oversubscribes them (``OverSubscribe=FORCE:4``) so a 3-task array runs at once on
a 2-core CI runner. ``make test`` installs the packages (``make slurm``); a missing one fails
the tests, never skips them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch")
KILL_WAIT_S = 20  # SIGTERM to SIGKILL when a job is cancelled or hits its time limit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SlurmCluster:
    root: Path
    node: str
    env: dict[str, str] = field(default_factory=dict)  # SLURM_CONF for clients
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A Slurm client command (squeue, scancel, ...) against this cluster."""
        return subprocess.run(
            list(args), env=os.environ | self.env, capture_output=True, text=True, check=check
        )

    def log(self) -> str:
        """The daemons' logs (for assertion messages)."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / "log" / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def cancel_all(self) -> None:
        self.run("scancel", "--full", "--user=root", check=False)


def _slurm_conf(root: Path, node: str, cpus: int, munge_socket: Path) -> str:
    ctld_port, slurmd_port = _free_port(), _free_port()
    return f"""\
ClusterName=hpstest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/slurmd.%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait={KILL_WAIT_S}
MinJobAge=600
MessageTimeout=20
SlurmdTimeout=300
InactiveLimit=0
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


def _wait(what: str, ok: object, timeout: float, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():  # type: ignore[operator]
            return
        for proc in cluster.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode})\n{cluster.log()}")
        time.sleep(0.2)
    raise RuntimeError(f"Slurm: {what} not after {timeout:.0f} s\n{cluster.log()}")


@contextlib.contextmanager
def slurm_cluster() -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd; wait until the node is idle; stop them by pid
    (and any job left over) at the end."""
    missing = [p for p in DAEMONS if not Path(p).exists()]
    if missing:
        raise RuntimeError(f"Slurm is not installed ({', '.join(missing)}): run `make slurm`")
    if os.geteuid() != 0:
        raise RuntimeError("the Slurm tests start slurmctld and slurmd and must run as root")
    root = Path(tempfile.mkdtemp(prefix="hps-slurm-"))  # short: a socket path has 108 bytes
    for sub in ("state", "spool", "run", "log", "munge"):
        (root / sub).mkdir(mode=0o700)
    os.chmod(root, 0o755)  # tasks run as root here, but keep the tree traversable
    node = socket.gethostname().split(".")[0]
    munge_socket = root / "munge" / "munge.socket"
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, node, os.cpu_count() or 1, munge_socket))
    cluster = SlurmCluster(root=root, node=node, env={"SLURM_CONF": str(conf)})
    env = os.environ | cluster.env
    logs = root / "log"
    try:
        cluster.procs.append(
            subprocess.Popen(
                [
                    "/usr/sbin/munged",
                    "--foreground",
                    "--force",
                    f"--socket={munge_socket}",
                    f"--key-file={key}",
                    f"--pid-file={root / 'run' / 'munged.pid'}",
                    f"--seed-file={root / 'munge' / 'munged.seed'}",
                    f"--log-file={logs / 'munged.log'}",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(logs / "munged.out").open("ab"),
                start_new_session=True,
            )
        )
        _wait("munged's socket", munge_socket.exists, 30, cluster)
        for daemon in ("slurmctld", "slurmd"):
            args = [f"/usr/sbin/{daemon}", "-D", "-f", str(conf)]
            if daemon == "slurmctld":
                args.append("-i")  # a fresh state directory: nothing to recover
            cluster.procs.append(
                subprocess.Popen(
                    args,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=(logs / f"{daemon}.out").open("ab"),
                    start_new_session=True,
                )
            )

        def node_idle() -> bool:
            out = cluster.run("sinfo", "--noheader", "--format=%t", check=False).stdout
            return out.strip() == "idle"

        _wait("the node idle in sinfo", node_idle, 60, cluster)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.cancel_all()
            _wait("jobs gone", lambda: not _jobs(cluster), KILL_WAIT_S + 15, cluster)
        for proc in reversed(cluster.procs):
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _jobs(cluster: SlurmCluster) -> str:
    return cluster.run(
        "squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING", check=False
    ).stdout.strip()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


__all__ = ["KILL_WAIT_S", "SlurmCluster", "slurm_cluster"]
