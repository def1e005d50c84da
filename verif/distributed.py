"""Running independent jobs on a Dask cluster: ``DASK=tcp://host:8786`` or ``DASK=local:<n>``.

``make regress`` runs its cases with pytest-xdist on this machine by default; with ``DASK=``
it sends them to the workers of a Dask cluster instead (``docs/verification.md``, section
"Regressions over several machines"). Dask because it is pure Python from two pip packages
(``dask``, ``distributed``), needs no service beyond ``dask scheduler`` and ``dask worker``
processes, and a user needs only the scheduler's address. ``local:<n>`` starts n
single-threaded worker processes on this machine for the length of the run.

What this module guarantees:

* every worker runs the same code as this checkout: :func:`open_cluster` asks each worker for
  its :func:`fingerprint` (commit and a digest of uncommitted changes) and refuses a cluster
  whose workers differ from here;
* each job runs in a fresh Python process on its worker (:func:`call_isolated`): cocotb's
  runner and the model builds change ``os.environ`` and ``sys.path``, and a worker runs its
  tasks in threads, so jobs in the worker's own process would see each other's environment.
  The job builds or reuses its content-hashed Verilator model itself, under the build's lock.

:func:`main` is what that fresh process runs (``<module>:<function> <argument.json>
<result.json>``): it calls the function with the decoded argument and writes its JSON-able
result. It is started with ``python -c`` rather than as a ``python -m`` tool: it is no command
for users.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import distributed

from ita.cli import Key, UsageError

__all__ = ["DASK", "Target", "DistributedError", "IsolatedCallFailed", "parse_target",
           "fingerprint", "open_cluster", "Submission", "call_isolated", "main"]

ROOT = Path(__file__).resolve().parent.parent

#: How long to wait for a scheduler to answer and for its first worker to appear.
CONNECT_TIMEOUT_S = 30
#: Lines of a job's output sent back with its result (its full log stays on the worker).
OUTPUT_TAIL_LINES = 200
#: Variables of the submitting process that must not leak into a job's process.
_SCRUBBED_ENV = ("MAKEFLAGS", "MAKEOVERRIDES", "MFLAGS", "MAKELEVEL", "VERIF_OPTIONS",
                 "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST")

_LOCAL = re.compile(r"local:(\d+)\Z")
#: A scheduler address: ``scheme://host:port`` (tcp, tls, ws, wss) or plain ``host:port``.
_ADDRESS = re.compile(r"((tcp|tls|ws|wss)://)?(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.-]+):\d{1,5}\Z")


class DistributedError(RuntimeError):
    """The cluster cannot be used (unreachable, no worker, a worker on other code)."""


class IsolatedCallFailed(RuntimeError):
    """A job's process ended without writing its result."""


@dataclass(frozen=True)
class Target:
    """Where jobs go: a cluster started here (``workers`` > 0) or a scheduler's address."""

    text: str          #: as the user wrote it
    workers: int = 0   #: local:<n>
    address: str = ""  #: the scheduler of a running cluster

    @property
    def local(self) -> bool:
        return self.workers > 0


def parse_target(text: str) -> Target:
    """``local:<n>`` or a scheduler address; ValueError on anything else."""
    text = text.strip()
    match = _LOCAL.match(text)
    if match:
        workers = int(match.group(1))
        if workers < 1:
            raise ValueError(text)
        return Target(text, workers=workers)
    if _ADDRESS.match(text):
        return Target(text, address=text if "://" in text else f"tcp://{text}")
    raise ValueError(text)


def _parse_dask(text: str) -> str:
    return parse_target(text).text if text else ""


#: The one variable that selects Dask; empty: run on this machine.
DASK = Key("DASK", "", _parse_dask, "local:<workers> or a scheduler address like tcp://host:8786",
           "run the cases on Dask (default: here, with pytest-xdist)")


def _git(*args: str, root: Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.decode(errors="replace") if proc.returncode == 0 else None


def fingerprint(root: Path = ROOT) -> dict:
    """What code a process runs: its checkout's commit and a digest of the uncommitted
    changes to tracked files (None outside a git checkout), with host, path and Python."""
    commit = _git("rev-parse", "HEAD", root=root)
    diff = _git("diff", "HEAD", "--binary", root=root) if commit else None
    return {"commit": commit.strip() if commit else None,
            "changes": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else "",
            "host": socket.gethostname(), "root": str(root),
            "python": ".".join(map(str, sys.version_info[:3]))}


def _describe(fp: dict) -> str:
    if not fp.get("commit"):
        return f"no git checkout at {fp['root']}"
    changes = f" with uncommitted changes {fp['changes']}" if fp["changes"] else ""
    return f"commit {fp['commit'][:12]}{changes}"


def _check_workers(workers: dict[str, dict], here: dict) -> None:
    for address, fp in sorted(workers.items()):
        if (fp.get("commit"), fp.get("changes")) != (here["commit"], here["changes"]):
            raise DistributedError(
                f"worker {address} ({fp['host']}:{fp['root']}) runs {_describe(fp)}, this "
                f"checkout {_describe(here)}: start the workers from a checkout of the same "
                f"commit")
        if fp.get("python", "").rsplit(".", 1)[0] != here["python"].rsplit(".", 1)[0]:
            raise DistributedError(f"worker {address} runs Python {fp['python']}, this "
                                   f"checkout {here['python']}")


@dataclass
class Cluster:
    """A cluster ready for jobs: its scheduler's address and each worker's fingerprint."""

    target: Target
    address: str
    workers: dict[str, dict] = field(default_factory=dict)
    threads: int = 0  #: jobs the workers run at once

    def describe(self) -> str:
        where = "started here" if self.target.local else "at"
        hosts = sorted({fp["host"] for fp in self.workers.values()})
        return (f"Dask cluster {where} {self.address}: {len(self.workers)} workers, "
                f"{self.threads} jobs at once, on {', '.join(hosts)}")


@contextlib.contextmanager
def open_cluster(target: Target) -> Iterator[Cluster]:
    """Start (``local:<n>``) or reach (an address) the cluster and check its workers' code;
    DistributedError with a one-line reason when it cannot be used."""
    here = fingerprint()
    with contextlib.ExitStack() as stack:
        try:
            if target.local:
                local = stack.enter_context(distributed.LocalCluster(
                    n_workers=target.workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR))
                address = local.scheduler_address
            else:
                address = target.address
            client = stack.enter_context(
                distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False))
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            threads = sum(w["nthreads"] for w in
                          client.scheduler_info(n_workers=-1)["workers"].values())
        except (OSError, TimeoutError) as exc:
            raise DistributedError(f"Dask scheduler {target.text}: {_reason(exc)}") from None
        try:
            workers = client.run(fingerprint)
        except Exception as exc:  # e.g. a worker whose checkout lacks this module
            raise DistributedError(f"a worker of {target.text} cannot run this checkout's "
                                   f"code ({_reason(exc)}): start the workers from a checkout "
                                   f"of the same commit") from None
        _check_workers(workers, here)
        yield Cluster(target, address, workers, threads)


def _reason(exc: BaseException) -> str:
    text = (str(exc).splitlines() or [""])[0]
    return text or type(exc).__name__


def call_isolated(target: str, argument) -> dict:
    """A Dask task: ``target(argument)`` (``module:function``) in a fresh Python process in
    this worker's checkout. Returns {"result", "output" (its last lines), "worker"}."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="dask-job-") as tmp:
        given, result = Path(tmp) / "argument.json", Path(tmp) / "result.json"
        given.write_text(json.dumps(argument))
        proc = subprocess.run([sys.executable, "-c", _JOB_MAIN, target, str(given),
                               str(result)], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace")
        tail = "\n".join(proc.stdout.splitlines()[-OUTPUT_TAIL_LINES:])
        if not result.is_file():
            last = tail.splitlines()[-1] if tail else "no output"
            raise IsolatedCallFailed(f"{target} ended with exit status {proc.returncode} on "
                                     f"{socket.gethostname()} without a result: {last}")
        value = json.loads(result.read_text())
    return {"result": value, "output": tail, "worker": socket.gethostname()}


#: The program of a job's process: :func:`main` of this module.
_JOB_MAIN = f"import sys; from {__name__} import main; sys.exit(main(sys.argv[1:]))"


class Submission:
    """Jobs submitted to a cluster by address, one per name; :meth:`reply` waits for one.

    A context manager: leaving it cancels what has not run and closes the connection.
    """

    def __init__(self, address: str, target: str, arguments: Sequence, names: Sequence[str]):
        if len(arguments) != len(names) or len(set(names)) != len(names):
            raise ValueError("one unique name per argument")
        self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S,
                                         set_as_default=False)
        run = uuid.uuid4().hex[:8]  # keys unique on a scheduler shared by several runs
        self.futures = {
            name: self.client.submit(call_isolated, target, argument, pure=False,
                                     key=f"{name}-{run}")
            for name, argument in zip(names, arguments, strict=True)}

    def reply(self, name: str) -> dict:
        """The reply of :func:`call_isolated` for ``name``; raises what the job raised."""
        return self.futures[name].result()

    def __enter__(self) -> Submission:
        return self

    def __exit__(self, *exc) -> None:
        self.client.cancel(list(self.futures.values()))
        self.client.close()


def main(words: Sequence[str]) -> int:
    """A job's process: ``<module>:<function> <argument.json> <result.json>``."""
    try:
        if len(words) != 3 or words[0].count(":") != 1:
            raise UsageError("expected <module>:<function> <argument.json> <result.json>")
        module, name = words[0].split(":")
        try:
            function = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"no function {words[0]}: {exc}") from None
        argument = json.loads(Path(words[1]).read_text())
    except (UsageError, OSError, ValueError) as exc:
        print(f"verif.distributed: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    value = function(argument)
    partial = Path(words[2]).with_suffix(".tmp")
    partial.write_text(json.dumps(value))
    partial.replace(words[2])
    return 0
