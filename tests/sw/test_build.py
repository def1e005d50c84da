"""sw.build: programs compile with zig's clang, link where the memory map says, and give a
flat image in L2; its command line rejects bad arguments with one line."""

import struct
import subprocess
import sys

import pytest

from cluster_integration import memory_map as mm
from cluster_integration import memory_map_gen
from ita.cluster_config import DEFAULT
from sw import build


@pytest.fixture(scope="module")
def hello():
    return build.build_app("hello")


@pytest.fixture(scope="module")
def trap_one_core():
    return build.build_app("trap", cores=1)


def j_target(word, pc):
    """Target of a RISC-V JAL x0 (``j``) instruction word at ``pc``."""
    assert word & 0xFFF == 0x06F, f"{word:#010x} is not 'j'"
    imm = (((word >> 31) & 1) << 20 | ((word >> 12) & 0xFF) << 12 | ((word >> 20) & 1) << 11
           | ((word >> 21) & 0x3FF) << 1)
    return pc + (imm - (1 << 21) if imm & (1 << 20) else imm)


def test_layout(hello):
    l1, l2 = mm.region("L1"), mm.region("L2")
    s = hello.symbols
    assert hello.entry == s["_start"] == mm.BOOT_ADDRESS
    assert hello.sections[".vectors"][:2] == (mm.TRAP_VECTOR, 4 * memory_map_gen.VECTOR_ENTRIES)
    assert hello.sections[".text.init"][0] == mm.BOOT_ADDRESS
    assert s["__stack_top"] == l1.end
    assert s["__stack_size"] == DEFAULT.stack_size
    assert s["__stacks_start"] == l1.end - mm.CORES * DEFAULT.stack_size
    assert l1.base <= s["__l1_heap_start"] <= s["__stacks_start"]
    assert s["__l2_heap_end"] == l2.end
    for name, (address, size, _loaded) in hello.sections.items():
        inside = [r.name for r in (l1, l2) if r.base <= address and address + size <= r.end]
        assert inside, f"{name} at {address:#x}+{size} is outside L1 and L2"


def test_image(hello):
    base, words = build.read_hex(hello.hex)
    image = hello.bin.read_bytes()
    assert base == hello.base == mm.region("L2").base
    assert words == list(struct.unpack(f"<{len(image) // 4}I", image))
    # Every vector jumps to the trap entry; _start sits at its offset in the image.
    trap_entry = hello.symbols["__trap_entry"]
    for i in range(memory_map_gen.VECTOR_ENTRIES):
        pc = mm.TRAP_VECTOR + 4 * i
        assert j_target(words[(pc - base) // 4], pc) == trap_entry
    assert hello.sizes()["text"] > 0 and hello.sizes()["rodata"] > 0


def test_variant_and_defines(hello, trap_one_core):
    assert trap_one_core.elf.parent.name == "RT_CORES-1"
    assert hello.elf.parent.name == "hello"
    assert "trap_here" in trap_one_core.symbols
    assert trap_one_core.symbols["trap_here"] in range(mm.BOOT_ADDRESS, mm.region("L2").end)


def test_compile_error_is_reported(tmp_path, monkeypatch):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "main.c").write_text("int main(unsigned core) { return x; }\n")
    monkeypatch.setattr(build, "APPS_DIR", tmp_path)
    with pytest.raises(build.BuildError, match=r"(?s)compiling broken failed.*undeclared"):
        build.build_app("broken", out_dir=tmp_path / "out")


def test_image_must_lie_in_l2():
    elf = build.Elf(0, ((mm.region("L1").base, b"\0" * 4),), {}, {})
    with pytest.raises(build.BuildError, match="outside L2"):
        build._image(elf, mm.region("L2").base, mm.region("L2").size)


def test_bad_arguments():
    with pytest.raises(build.BuildError, match="no app 'nope'"):
        build.build_app("nope")
    with pytest.raises(build.BuildError, match="bad app name"):
        build.build_app("../hello")
    with pytest.raises(build.BuildError, match="cores must be"):
        build.build_app("hello", cores=mm.CORES + 1)
    with pytest.raises(build.BuildError, match="bad macro name"):
        build.build_app("hello", {"1X": 1})


@pytest.mark.parametrize("args, message", [
    ([], "missing APP="),
    (["APP=hello", "FOO=1"], "unknown key FOO (known: APP, CORES)"),
    (["hello"], "expected KEY=VALUE, got 'hello'"),
    (["APP=hello", "APP=trap"], "key APP given twice"),
    (["APP=nope"], "no app 'nope'"),
    (["APP=hello", "CORES=x"], "bad value 'x' for key CORES (expected an integer)"),
    (["APP=hello", "CORES=0"], "cores must be an integer in 1.."),
])
def test_command_line_errors(args, message):
    proc = subprocess.run([sys.executable, "-m", "sw.build", *args], capture_output=True,
                          text=True, cwd=build.ROOT, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sw.build: error: "), proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""


def test_command_line_builds(hello):
    proc = subprocess.run([sys.executable, "-m", "sw.build", "APP=hello"], capture_output=True,
                          text=True, cwd=build.ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sw.build: build/sw/hello/hello.elf (")
