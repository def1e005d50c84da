"""Progress lines of long steps, the C build cache and make sim's summary (verif/console.py)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw import toolchain
from verif import console

ROOT = Path(__file__).resolve().parents[2]


def test_ticking_prints_plain_lines_with_phase_and_time(capsys):
    with toolchain.ticking("building x", lambda: "compiling", interval=0.05):
        time.sleep(0.18)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) >= 2 and "\r" not in err
    assert all(line.startswith("toolchain: building x: compiling, ") for line in lines)
    assert capsys.readouterr().out == ""


def test_build_phase_follows_the_build_directory(tmp_path):
    assert toolchain._build_phase(tmp_path) == "verilating"
    for stem in ("Vtop", "Vtop__Syms", "Vtop___024root__0"):
        (tmp_path / f"{stem}.cpp").write_text("")
    assert toolchain._build_phase(tmp_path) == "verilating"  # no makefile yet
    (tmp_path / "Vtop.mk").write_text("")
    (tmp_path / "Vtop.o").write_text("")
    assert toolchain._build_phase(tmp_path) == "compiling C++ (1 of 3 files done)"
    for stem in ("Vtop__Syms", "Vtop___024root__0"):
        (tmp_path / f"{stem}.o").write_text("")
    assert toolchain._build_phase(tmp_path) == "linking"


def test_why_names_the_changed_sources(tmp_path):
    new = tmp_path / "top-new"
    old = tmp_path / "top-old"
    inputs = {"sources": {"a.v": "1", "b.v": "2", "c.sv": "3"}, "args": ["-x"]}
    assert toolchain._why("top", new, inputs) == "no earlier build of it"
    old.mkdir()
    before = {"sources": {"a.v": "1", "b.v": "0"}, "args": ["-y"]}
    (old / toolchain._INPUTS).write_text(json.dumps(before))
    assert toolchain._why("top", new, inputs) == "changed: b.v; new: c.sv; other build arguments"


def test_verbose_word_is_taken_out():
    assert console.take_verbose(["TEST=x", "VERBOSE=1", "S=3"]) == (["TEST=x", "S=3"], True)
    assert console.take_verbose(["TEST=x"]) == (["TEST=x"], False)


def test_summary_names_run_cycles_and_files(tmp_path):
    log = tmp_path / "sim.log"
    log.write_text("line\n")
    lines = console.summary("t", "PASS", {"S": 4, "CAUSAL": False, "WAVES": False},
                            {"cycles": 200, "ideal_cycles": 50, "summary": ["extra  x"]}, [log])
    assert lines[0] == "t PASS: S=4 CAUSAL=0"
    assert "utilisation 25.0 %" in lines[2] and lines[3] == "  extra  x"
    assert any(str(log) in line for line in lines)
    assert lines[-1].endswith("none (WAVES=1 writes them)")


def test_c_build_is_cached_by_content(capsys, tmp_path):
    from sw.build import build_app

    out = tmp_path / "hello"
    first = build_app("hello", out_dir=out)
    again = build_app("hello", out_dir=out)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("sw.build: C build of hello") and err[0].endswith(" s")
    assert err[1].endswith("cached")
    assert again.hex.read_text() == first.hex.read_text() and again.entry == first.entry
    build_app("hello", {"EXTRA": 1}, out_dir=out)  # other flags: compiled again
    assert not capsys.readouterr().err.strip().endswith("cached")


@pytest.mark.verilator
def test_make_sim_prints_a_summary_and_keeps_the_log_in_a_file():
    def sim(*words):
        proc = subprocess.run([sys.executable, "-m", "verif.sim", "TEST=smoke", "SEED=5",
                               *words], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    quiet = sim()
    assert quiet.stdout.splitlines()[-1].startswith("RESULT test=smoke status=PASS")
    assert "cocotb" not in quiet.stdout
    assert "sim: smoke PASS: SEED=5" in quiet.stderr
    log = next(line.split()[-1] for line in quiet.stderr.splitlines()
               if line.startswith("sim:   log "))
    assert "cocotb.regression" in (ROOT / log).read_text()
    loud = sim("VERBOSE=1")
    assert "cocotb.regression" in loud.stdout + loud.stderr
    assert loud.stdout.splitlines()[-1] == quiet.stdout.splitlines()[-1]


def test_a_held_lock_says_what_it_waits_for(capsys, tmp_path):
    import fcntl
    import threading

    lock = tmp_path / ".lock"

    def wait():
        with toolchain.file_lock(lock, busy="waiting for another build"):
            pass

    with open(lock, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        fcntl.flock(holder, fcntl.LOCK_UN)
        waiter.join(5)
    assert capsys.readouterr().err == "toolchain: waiting for another build ...\n"
