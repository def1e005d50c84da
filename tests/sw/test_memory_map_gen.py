"""The software view of a cluster configuration: linker script and C header generated from
``ita.cluster_config`` and ``cluster_integration.memory_map``. The header must say exactly
what the configuration says, in C and in assembly, for every named configuration."""

import collections
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from cluster_integration import memory_map as mm
from cluster_integration import memory_map_gen as gen
from cluster_integration.hwpe import regmap_gen
from ita.cluster_config import CONFIGS as CONFIG_TABLE
from ita.cluster_config import DEFAULT
from sw.build import TARGET_FLAGS


def defines(text):
    return dict(re.findall(r"^#define (\w+) +(.+)$", text, re.MULTILINE))


def number(text):
    return int(text.strip("()u"), 0)


CONFIGS = sorted(CONFIG_TABLE)


# --- generated files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_generation_is_deterministic_and_labelled(name):
    cluster = CONFIG_TABLE[name]
    first, second = gen.generate(cluster), gen.generate(cluster)
    assert first == second
    for rel, text in first.items():
        assert gen.banner(cluster) in text.splitlines()[0], rel
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), f"{rel} looks timestamped"
        assert max(len(line) for line in text.splitlines()) <= 100, rel


def test_write_per_configuration(tmp_path):
    small, default = CONFIG_TABLE["small"], CONFIG_TABLE["default"]
    written = gen.write(small, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        f"build/small/sw/{rel}" for rel in sorted(gen.OUTPUTS)]
    stamps = [p.stat().st_mtime_ns for p in written]
    assert gen.write(small, tmp_path) == []  # unchanged files are not rewritten
    assert [p.stat().st_mtime_ns for p in written] == stamps
    gen.write(default, tmp_path)
    small_h = (gen.output_dir(small, tmp_path) / "include/cluster_map.h").read_text()
    default_h = (gen.output_dir(default, tmp_path) / "include/cluster_map.h").read_text()
    assert number(defines(small_h)["CLUSTER_CORES"]) == small.cores
    assert number(defines(default_h)["L1_SIZE"]) == default.l1_size != small.l1_size


# --- the header says what the configuration says ----------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_header_values(name):
    cluster = CONFIG_TABLE[name]
    d = defines(gen.c_header(cluster))
    for r in cluster.regions:
        assert number(d[f"{r.name}_BASE"]) == r.base
        assert number(d[f"{r.name}_SIZE"]) == r.size
    for periph, registers in mm.PERIPHERALS.items():
        base = cluster.region(periph).base
        for reg in registers:
            prefix = f"{periph}_{reg.name}"
            assert number(d[f"{prefix}_OFFSET"]) == reg.offset
            assert number(d[f"{prefix}_ADDR"]) == base + reg.offset
            for f in reg.fields:
                fp = f"{prefix}_{f.name.upper()}"
                assert (number(d[f"{fp}_LSB"]), number(d[f"{fp}_WIDTH"]),
                        number(d[f"{fp}_MASK"])) == (f.lsb, f.width, f.mask)
    for line_name, line in mm.EVENT_LINES.items():
        assert number(d[f"EVENT_LINE_{line_name}"]) == line
        assert number(d[f"EVENT_{line_name}_MASK"]) == 1 << line
    assert number(d["CLUSTER_CORES"]) == cluster.cores
    assert number(d["CLUSTER_L1_BANKS"]) == cluster.l1_banks
    assert number(d["BOOT_ADDRESS"]) == cluster.boot_address
    assert number(d["TRAP_VECTOR"]) == cluster.trap_vector
    assert number(d["CLUSTER_STACK_SIZE"]) == cluster.stack_size
    assert number(d["CLUSTER_L1_RESERVED"]) == cluster.l1_reserved
    assert number(d["CLUSTER_L2_PROGRAM_SIZE"]) == cluster.l2_program_size


def test_macro_names_unique_across_generated_headers():
    names = re.findall(r"^#define (\w+)", gen.c_header(DEFAULT) + regmap_gen.c_header(),
                       re.MULTILINE)
    assert [n for n, c in collections.Counter(names).items() if c > 1] == []


@pytest.mark.parametrize("name", CONFIGS)
def test_linker_script_symbols(name):
    cluster = CONFIG_TABLE[name]
    text = gen.linker_script(cluster)
    symbols = dict(re.findall(r"^(__\w+) *= (0x[0-9A-F]+|\d+);$", text, re.MULTILINE))
    for r in cluster.regions:
        assert int(symbols[f"__{r.name.lower()}_base"], 0) == r.base
        assert int(symbols[f"__{r.name.lower()}_size"], 0) == r.size
    assert int(symbols["__trap_vector"], 0) == cluster.trap_vector
    assert int(symbols["__boot_address"], 0) == cluster.boot_address
    assert int(symbols["__cores"]) == cluster.cores
    assert int(symbols["__stack_size"], 0) == cluster.stack_size
    assert ".vectors __trap_vector :" in text and ".text.init __boot_address :" in text


def test_refuses_a_configuration_it_cannot_use():
    with pytest.raises(ValueError, match="aligned to its size"):
        replace(DEFAULT, l2_base=DEFAULT.l2_base + DEFAULT.l2_size // 2)
    with pytest.raises(ValueError, match="overlap"):
        replace(DEFAULT, l2_base=DEFAULT.l1_base)
    with pytest.raises(ValueError, match="stacks"):
        replace(DEFAULT, stack_size=DEFAULT.l1_size // DEFAULT.cores)
    with pytest.raises(ValueError, match="power of two"):
        replace(DEFAULT, l1_size=3 * DEFAULT.l1_size // 4)


@pytest.mark.parametrize("language", ["c", "assembler-with-cpp"])
def test_header_compiles_for_the_cores(tmp_path, language):
    header = tmp_path / "cluster_map.h"
    header.write_text(gen.c_header(DEFAULT))
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
