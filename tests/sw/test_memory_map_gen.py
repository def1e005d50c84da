"""The software view of the memory map: linker script and C header generated from
``cluster_integration.memory_map``. The committed files must match the description, and the
header must say exactly what the description says, in C and in assembly."""

import collections
import re
import subprocess
import sys

import pytest

from cluster_integration import memory_map as mm
from cluster_integration import memory_map_gen as gen
from cluster_integration.hwpe import regmap_gen
from sw.build import TARGET_FLAGS


def defines(text):
    return dict(re.findall(r"^#define (\w+) +(.+)$", text, re.MULTILINE))


def number(text):
    return int(text.strip("()u"), 0)


# --- committed files ---------------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(gen.OUTPUTS))
def test_committed_file_is_fresh(rel):
    path = gen.ROOT / rel
    assert path.is_file(), f"{rel} is missing; run `make regs`"
    assert path.read_text(encoding="utf-8") == gen.OUTPUTS[rel](), (
        f"{rel} differs from cluster_integration/memory_map.py; run `make regs`")


def test_committed_tree_passes_check(capsys):
    assert gen.main(["--check"]) == 0, capsys.readouterr().out


def test_generation_is_deterministic_and_labelled():
    first, second = gen.generate(), gen.generate()
    assert first == second
    for rel, text in first.items():
        assert gen.BANNER in text.splitlines()[0], rel
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), f"{rel} looks timestamped"
        assert max(len(line) for line in text.splitlines()) <= 100, rel


def test_check_and_write(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert capsys.readouterr().out.splitlines() == [f"stale: {rel}; run make regs"
                                                    for rel in gen.OUTPUTS]
    assert not any(tmp_path.iterdir()), "--check must not write"
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    capsys.readouterr()
    stamps = {rel: (tmp_path / rel).stat().st_mtime_ns for rel in gen.OUTPUTS}
    assert gen.write() == []  # unchanged files are not rewritten
    assert {rel: (tmp_path / rel).stat().st_mtime_ns for rel in gen.OUTPUTS} == stamps
    (tmp_path / "sw/generated/link.ld").write_text("/* edited */\n")
    assert gen.main(["--check"]) == 1
    assert capsys.readouterr().out == "stale: sw/generated/link.ld; run make regs\n"


# --- the header says what the memory map says -------------------------------------------------


def test_header_values():
    d = defines(gen.c_header())
    for r in mm.REGIONS:
        assert number(d[f"{r.name}_BASE"]) == r.base
        assert number(d[f"{r.name}_SIZE"]) == r.size
    for periph, registers in mm.PERIPHERALS.items():
        base = mm.region(periph).base
        for reg in registers:
            prefix = f"{periph}_{reg.name}"
            assert number(d[f"{prefix}_OFFSET"]) == reg.offset
            assert number(d[f"{prefix}_ADDR"]) == base + reg.offset
            for f in reg.fields:
                fp = f"{prefix}_{f.name.upper()}"
                assert (number(d[f"{fp}_LSB"]), number(d[f"{fp}_WIDTH"]),
                        number(d[f"{fp}_MASK"])) == (f.lsb, f.width, f.mask)
    for name, line in mm.EVENT_LINES.items():
        assert number(d[f"EVENT_LINE_{name}"]) == line
        assert number(d[f"EVENT_{name}_MASK"]) == 1 << line
    assert number(d["CLUSTER_CORES"]) == mm.CORES
    assert number(d["CLUSTER_L1_BANKS"]) == mm.L1_BANKS
    assert number(d["BOOT_ADDRESS"]) == mm.BOOT_ADDRESS
    assert number(d["TRAP_VECTOR"]) == mm.TRAP_VECTOR
    assert number(d["CLUSTER_STACK_SIZE"]) == gen.STACK_SIZE


def test_macro_names_unique_across_generated_headers():
    names = re.findall(r"^#define (\w+)", gen.c_header() + regmap_gen.c_header(), re.MULTILINE)
    assert [n for n, c in collections.Counter(names).items() if c > 1] == []


def test_linker_script_symbols():
    text = gen.linker_script()
    symbols = dict(re.findall(r"^(__\w+) *= (0x[0-9A-F]+|\d+);$", text, re.MULTILINE))
    for r in mm.REGIONS:
        assert int(symbols[f"__{r.name.lower()}_base"], 0) == r.base
        assert int(symbols[f"__{r.name.lower()}_size"], 0) == r.size
    assert int(symbols["__trap_vector"], 0) == mm.TRAP_VECTOR
    assert int(symbols["__boot_address"], 0) == mm.BOOT_ADDRESS
    assert int(symbols["__cores"]) == mm.CORES
    assert int(symbols["__stack_size"], 0) == gen.STACK_SIZE
    assert ".vectors __trap_vector :" in text and ".text.init __boot_address :" in text


def test_refuses_a_map_it_cannot_boot(monkeypatch):
    monkeypatch.setattr(mm, "BOOT_ADDRESS", mm.TRAP_VECTOR + 0x40)
    with pytest.raises(ValueError, match="room for the trap vector table"):
        gen.linker_script()
    monkeypatch.setattr(mm, "BOOT_ADDRESS", 0x1C00_0080)
    monkeypatch.setattr(mm, "TRAP_VECTOR", 0x1C00_0010)
    with pytest.raises(ValueError, match="256-byte aligned"):
        gen.c_header()


@pytest.mark.parametrize("language", ["c", "assembler-with-cpp"])
def test_header_compiles_for_the_cores(tmp_path, language):
    header = tmp_path / "cluster_map.h"
    header.write_text(gen.c_header())
    if language == "c":
        source = tmp_path / "use.c"
        source.write_text('#include "cluster_map.h"\n#include "cluster_map.h"\n'
                          "unsigned f(void) { return *(volatile unsigned *)"
                          "EVENT_UNIT_BARRIER_ADDR + (EVENT_DMA_MASK & DMA_STATUS_BUSY_MASK)"
                          " + CLUSTER_CORES; }\n")
    else:
        source = tmp_path / "use.S"
        source.write_text('#include "cluster_map.h"\n'
                          "li t0, SOC_CTRL_EXIT_ADDR\nli t1, EVENT_ITA_MASK\n"
                          "li t2, DMA_LENGTH_BYTES_MASK\n")
    cmd = [sys.executable, "-m", "ziglang", "cc", *TARGET_FLAGS, "-O2", "-std=c11", "-Wall",
           "-Wextra", "-Werror", "-ffreestanding", f"-I{tmp_path}", "-c", str(source), "-o",
           str(tmp_path / "use.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
