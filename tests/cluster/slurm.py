"""A private single-node SLURM for tests and by hand: munged, slurmctld and slurmd under one folder ROOT.

Uses Debian's packages (``.ci/install-slurm.sh`` installs them) and nothing of the system's configuration:
the config, munge key, sockets, state, logs and PID files all live in ROOT, the daemons listen on free
ports picked at start, and each daemon runs in the foreground (``-F``/``-D``) as a child, so the PID we record
is the daemon's own and ``stop`` ends exactly the processes ``start`` made.

By hand (as root; see docs/hpc.md)::

    python tests/cluster/slurm.py start /tmp/slurm      # prints the environment to use, leaves it running
    eval "$(python tests/cluster/slurm.py env /tmp/slurm)"
    sinfo; sbatch --wrap hostname; squeue
    python tests/cluster/slurm.py stop /tmp/slurm       # stops the three daemons by their recorded PIDs
    python tests/cluster/slurm.py run /tmp/slurm -- snakemake --workflow-profile profiles/slurm ...   # start, run, stop

From Python::

    with SlurmCluster(root) as cluster:
        subprocess.run(["sinfo"], env=cluster.env(), check=True)

The jobstep pitfall: Snakemake's SLURM jobstep plugin strips every ``SLURM_*`` variable, ``SLURM_CONF``
included, before the ``srun`` it runs inside each job, and ``srun`` then finds no configuration. Rather than
writing ``/etc/slurm/slurm.conf`` (a system file: it would clash with a real SLURM on the machine and with
another private cluster, and needs root), ``env()`` puts ``ROOT/bin`` first on PATH, where an ``srun``
wrapper exports ``SLURM_CONF`` again and execs the real ``srun``. Jobs inherit PATH from ``sbatch``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
DAEMONS = ("munged", "slurmctld", "slurmd")
NODE = "localhost"
PARTITION = "debug"


class SlurmError(RuntimeError):
    pass


def missing_binaries() -> list[str]:
    """SLURM/munge programs this module needs that are not installed."""
    names = ["munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "srun", "scontrol"]
    return [n for n in names if _which(n) is None]


def _which(name: str) -> str | None:
    # The daemons live in /usr/sbin, which is not on every PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_resources() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) of this machine as slurmd sees it (``slurmd -C``)."""
    out = subprocess.run([_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    cpus = re.search(r"\bCPUs=(\d+)", out)
    mem = re.search(r"\bRealMemory=(\d+)", out)
    n_cpus = int(cpus[1]) if cpus else os.cpu_count() or 1
    # Leave a little for the daemons and the submitting Snakemake; SLURM needs >= 1000 to be useful.
    real_mb = max(1000, int(int(mem[1]) * 0.9)) if mem else 1000
    return n_cpus, real_mb


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SlurmCluster:
    """munged + slurmctld + slurmd with everything under ``root``; ``start()``/``stop()`` or a ``with`` block."""

    def __init__(self, root: str | Path, cpus: int | None = None, memory_mb: int | None = None) -> None:
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.procs: dict[str, subprocess.Popen] = {}

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "run" / "munge.socket.2"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def pid_file(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.child.pid"

    def log_file(self, daemon: str) -> Path:
        return self.root / "log" / f"{daemon}.log"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for SLURM client commands and for Snakemake: SLURM_CONF, and the srun wrapper first
        on PATH (jobs inherit both through sbatch)."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    # -- set-up -----------------------------------------------------------------------------------------
    def _write_files(self) -> None:
        for sub in ("etc", "run", "log", "state/ctld", "state/d", "munge", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged refuses keys and folders that others can read or write.
        for sub in ("munge", "run", "log"):
            (self.root / sub).chmod(0o700 if sub == "munge" else 0o755)
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        key.chmod(0o400)

        cpus, real_mb = _node_resources()
        cpus = self.cpus or cpus
        real_mb = self.memory_mb or real_mb
        ctld_port, d_port = _free_port(), _free_port()
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "# Written by tests/cluster/slurm.py: a private single-node cluster.",
                    "ClusterName=ci",
                    f"SlurmctldHost={NODE}(127.0.0.1)",
                    f"SlurmctldPort={ctld_port}",
                    f"SlurmdPort={d_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={r}/state/ctld",
                    f"SlurmdSpoolDir={r}/state/d",
                    f"SlurmctldPidFile={r}/run/slurmctld.pid",
                    f"SlurmdPidFile={r}/run/slurmd.pid",
                    f"SlurmctldLogFile={self.log_file('slurmctld')}",
                    f"SlurmdLogFile={self.log_file('slurmd')}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "MpiDefault=none",
                    "MailProg=/bin/true",
                    "ReturnToService=2",
                    # Finished jobs stay visible to squeue (the status command without slurmdbd) for an hour.
                    "MinJobAge=3600",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "SchedulerType=sched/backfill",
                    # Listen on 127.0.0.1 (the node and controller addresses) rather than on every interface.
                    "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
                    # With CPUs/memory set by hand (e.g. more CPUs than the machine has, so that a test's limit
                    # is Snakemake's and not the node's), slurmd must not drain the node for having fewer.
                    *(["SlurmdParameters=config_overrides"] if self.cpus or self.memory_mb else []),
                    f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_mb} State=UNKNOWN",
                    f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        real_srun = _which("srun") or "/usr/bin/srun"
        wrapper = self.bin_dir / "srun"
        wrapper.write_text(
            "#!/bin/sh\n"
            "# Snakemake's jobstep plugin drops SLURM_CONF before its inner srun: give it back.\n"
            f'export SLURM_CONF="{self.conf}"\n'
            f'exec {real_srun} "$@"\n',
            encoding="utf-8",
        )
        wrapper.chmod(0o755)

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            cwd=self.root,
            # Own session: a Ctrl-C meant for the command being run must not reach the daemons.
            start_new_session=True,
        )
        out.close()
        self.procs[name] = proc
        self.pid_file(name).write_text(f"{proc.pid}\n", encoding="utf-8")

    def _wait(self, what: str, predicate, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmError(f"{name} exited with {proc.returncode} while waiting for {what}:\n{self._tail()}")
            if time.monotonic() > deadline:
                raise SlurmError(f"timed out after {timeout} s waiting for {what}:\n{self._tail()}")
            time.sleep(0.05)

    def _tail(self, lines: int = 15) -> str:
        chunks = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            chunks.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(chunks)

    def node_state(self) -> str:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-n", NODE, "-o", "%T"], capture_output=True, text=True, env=self.env()
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    def start(self, timeout: float = START_TIMEOUT_S) -> SlurmCluster:
        """Start the three daemons and return once the node is idle in ``sinfo``."""
        if missing := missing_binaries():
            raise SlurmError(f"not installed: {', '.join(missing)} (run .ci/install-slurm.sh)")
        if any(self.pid_file(d).exists() and _pid_alive(_read_pid(self.pid_file(d))) for d in DAEMONS):
            raise SlurmError(f"a cluster already runs in {self.root}; stop it first")
        self._write_files()
        try:
            self._spawn(
                "munged",
                [
                    _which("munged") or "munged",
                    "-F",
                    f"--socket={self.munge_socket}",
                    f"--key-file={self.root / 'munge' / 'munge.key'}",
                    f"--pid-file={self.root / 'run' / 'munged.pid'}",
                    f"--log-file={self.log_file('munged')}",
                    f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                    # Private folders under /tmp (world-writable, sticky) fail munged's path checks otherwise.
                    "--force",
                ],
            )
            self._wait("munged's socket", self.munge_socket.exists, timeout)
            self._spawn("slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
            self._spawn("slurmd", [_which("slurmd") or "slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
            self._wait("the node to be idle in sinfo", lambda: self.node_state() == "idle", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    # -- tear-down --------------------------------------------------------------------------------------
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM each daemon by its recorded PID (slurmd and slurmctld first, munged last), SIGKILL after
        ``timeout``. Jobs still running are cancelled first so that no job step outlives the cluster."""
        if self.conf.exists() and (self.procs.get("slurmctld") or self.pid_file("slurmctld").exists()):
            subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.env(), timeout=10)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            pid = proc.pid if proc else _read_pid(self.pid_file(name))
            if pid and (proc is None or proc.poll() is None) and _pid_alive(pid) and _is_daemon(pid, name):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while _alive(pid, proc) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _alive(pid, proc):
                    os.kill(pid, signal.SIGKILL)
                    while _alive(pid, proc) and time.monotonic() < deadline + 5:
                        time.sleep(0.05)
            if proc is not None:
                proc.poll()
            self.pid_file(name).unlink(missing_ok=True)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_daemon(pid: int, name: str) -> bool:
    """Guard against a recycled PID: only signal a process whose command is the daemon we started."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return True  # no /proc: trust the PID file
    return comm == name


def _alive(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    if not _pid_alive(pid):
        return False
    try:  # a zombie of someone else's child counts as gone
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True


def _shell_exports(cluster: SlurmCluster) -> str:
    env = cluster.env()
    return f"export SLURM_CONF='{env['SLURM_CONF']}'\nexport PATH='{env['PATH']}'\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("start", "start the cluster in ROOT and leave it running (daemons detached from this shell's job control)"),
        ("stop", "stop the cluster of ROOT by its recorded PIDs"),
        ("env", 'print shell exports (SLURM_CONF, PATH) for ROOT\'s cluster: eval "$(... env ROOT)"'),
        ("run", "start the cluster, run a command in its environment, stop it (also on failure or Ctrl-C)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("root", type=Path)
        if name in ("start", "run"):
            p.add_argument("--cpus", type=int, help="CPUs of the node (default: from slurmd -C)")
            p.add_argument("--memory-mb", type=int, help="RealMemory of the node (default: 90%% of slurmd -C)")
        if name == "run":
            p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    args = parser.parse_args(argv)

    if args.command == "env":
        sys.stdout.write(_shell_exports(SlurmCluster(args.root)))
        return 0
    if args.command == "stop":
        SlurmCluster(args.root).stop()
        print(f"stopped the cluster in {args.root}", file=sys.stderr)
        return 0
    cluster = SlurmCluster(args.root, cpus=args.cpus, memory_mb=args.memory_mb)
    if args.command == "start":
        started = time.monotonic()
        cluster.start()
        pids = ", ".join(f"{n} {p.pid}" for n, p in cluster.procs.items())
        print(
            f"SLURM up in {time.monotonic() - started:.1f} s ({pids}); logs in {cluster.root / 'log'}", file=sys.stderr
        )
        sys.stdout.write(_shell_exports(cluster))
        # Leave the daemons running: forget them so that Popen's destructor does not warn.
        cluster.procs.clear()
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("run: give a command after --")
    with cluster:
        proc = subprocess.Popen(cmd, env=cluster.env(), start_new_session=True)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # Snakemake cancels its SLURM jobs on SIGINT (it ignores SIGTERM while jobs are out).
            os.killpg(proc.pid, signal.SIGINT)
            return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
