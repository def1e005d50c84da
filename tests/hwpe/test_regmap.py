"""The HWPE register map: its consistency, and the three files generated from it.

``cluster_integration.hwpe.regmap`` is the one description; ``regmap_gen`` turns it into the
C header, the Python register model and the docs table. These tests prove that the committed
files match it, that the description is self-consistent and covers the engine configuration
and every tensor, and that the C and Python views of a register word agree.
"""

import ast
import collections
import random
import re
import shutil
import subprocess
import sys
import types

import pytest
from amaranth.hdl import Shape
from amaranth.lib import data

from cluster_integration.hwpe import regmap, regmap_gen
from ita.config import DEFAULT_CONFIG
from ita.rtl.layouts import ActivationKind, ErrorCode, Mode, engine_config_layout
from ita.rtl.schedule import tensor_shapes

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc not found on PATH: cannot compile "
                               "the generated C header")

#: The flags of the brief, and a stricter set a kernel build might use.
GCC_FLAGS = {
    "c11": ["-std=c11", "-Wall", "-Wextra", "-Werror"],
    "c99_pedantic_conversion": ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic-errors",
                                "-Wconversion", "-Wsign-conversion"],
}

#: (S, E, P, F) shapes for the tensor pointer checks: tile-aligned, ragged, tiny.
SHAPES = [(64, 64, 64, 64), (100, 200, 30, 300), (1, 1, 1, 1), (192, 128, 64, 256)]


def fresh_model():
    """The freshly generated Python register model, as a module."""
    module = types.ModuleType("regs_generated_fresh")
    exec(compile(regmap_gen.python_model(), "regs_generated.py", "exec"), module.__dict__)
    return module


def field_range(width, signed):
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


# --- (a) generated files are up to date ------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(regmap_gen.OUTPUTS))
def test_committed_file_is_fresh(rel):
    path = regmap_gen.ROOT / rel
    assert path.is_file(), f"{rel} is missing; run `make regs`"
    assert path.read_text(encoding="utf-8") == regmap_gen.OUTPUTS[rel](), (
        f"{rel} differs from the register map description; run `make regs`")


def test_generation_is_deterministic_and_labelled():
    first, second = regmap_gen.generate(), regmap_gen.generate()
    assert first == second
    for rel, text in first.items():
        assert regmap_gen.BANNER in text.splitlines()[0], rel
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), f"{rel} looks timestamped"


def test_check_and_write(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(regmap_gen, "ROOT", tmp_path)
    assert regmap_gen.main(["--check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"stale: {rel}; run make regs" for rel in regmap_gen.OUTPUTS]
    assert not any(tmp_path.iterdir()), "--check must not write"

    assert regmap_gen.main([]) == 0
    assert regmap_gen.main(["--check"]) == 0
    capsys.readouterr()
    stamps = {rel: (tmp_path / rel).stat().st_mtime_ns for rel in regmap_gen.OUTPUTS}
    assert regmap_gen.write(tmp_path) == []  # unchanged files are not rewritten
    assert {rel: (tmp_path / rel).stat().st_mtime_ns for rel in regmap_gen.OUTPUTS} == stamps

    header = "sw/include/generated/ita_hwpe_regs.h"
    (tmp_path / header).write_text("/* edited by hand */\n")
    assert regmap_gen.main(["--check"]) == 1
    assert capsys.readouterr().out == f"stale: {header}; run make regs\n"


def test_committed_tree_passes_check(capsys):
    assert regmap_gen.main(["--check"]) == 0, capsys.readouterr().out


# --- (b) the description is self-consistent --------------------------------------------------


def test_offsets_unique_and_aligned():
    offsets = collections.Counter(r.offset for r in regmap.REGISTERS)
    assert [hex(o) for o, n in offsets.items() if n > 1] == []
    names = collections.Counter(r.name for r in regmap.REGISTERS)
    assert [n for n, c in names.items() if c > 1] == []
    for r in regmap.REGISTERS:
        assert r.offset % regmap.WORD_BYTES == 0, r.name
        assert r.access in ("r", "w", "rw"), r.name
        assert (r.offset >= regmap.JOB_BASE) == r.job, r.name


def test_job_registers_are_one_contiguous_block():
    assert all(r.job for r in regmap.JOB) and not any(r.job for r in regmap.SHARED)
    first = regmap.JOB_BASE // regmap.WORD_BYTES
    assert [r.word for r in regmap.JOB] == list(range(first, first + len(regmap.JOB)))


@pytest.mark.parametrize("reg", regmap.REGISTERS, ids=lambda r: r.name)
def test_fields_fit_and_do_not_overlap(reg):
    used = 0
    for f in reg.fields:
        assert f.width >= 1 and f.lsb >= 0, f"{reg.name}.{f.name}"
        assert f.lsb + f.width <= 32, f"{reg.name}.{f.name} leaves the 32-bit word"
        assert used & f.mask == 0, f"{reg.name}.{f.name} overlaps another field"
        used |= f.mask
    assert len({f.name for f in reg.fields}) == len(reg.fields), reg.name


def test_encodings_fit_their_fields():
    def width(reg, field):
        return next(f.width for f in regmap.register(reg).fields if f.name == field)

    assert max(Mode) < 1 << width("MODE", "mode")
    assert max(m.value for m in ActivationKind) < 1 << width("MODE", "activation")
    assert max(ErrorCode) < 1 << width("ERROR", "code")
    assert DEFAULT_CONFIG.contexts <= width("STATUS", "contexts")


def test_c_macro_names_are_unique():
    names = re.findall(r"^#define (\w+)", regmap_gen.c_header(), re.MULTILINE)
    duplicates = [n for n, c in collections.Counter(names).items() if c > 1]
    assert duplicates == []


# --- (c) the job registers program exactly the engine configuration --------------------------


def config_leaves(layout, path=()):
    """(dotted path, Shape) of every leaf of a data layout, e.g. ``requant.3.shift``."""
    if isinstance(layout, data.StructLayout):
        for name, field in layout:
            yield from config_leaves(field.shape, (*path, name))
    elif isinstance(layout, data.ArrayLayout):
        for i in range(layout.length):
            yield from config_leaves(layout.elem_shape, (*path, str(i)))
    elif isinstance(layout, data.Layout):
        raise TypeError(f"unexpected layout {layout!r} at {'.'.join(path)}")
    else:
        yield ".".join(path), Shape.cast(layout)


def test_config_leaf_walk_sees_the_whole_layout():
    layout = engine_config_layout()
    leaves = dict(config_leaves(layout))
    assert "requant.3.shift" in leaves and "act_requant.add" in leaves
    assert sum(shape.width for shape in leaves.values()) == layout.size


def test_job_fields_cover_engine_config_exactly_once():
    leaves = dict(config_leaves(engine_config_layout()))
    programmed = collections.Counter(f.config for r in regmap.JOB for f in r.fields
                                     if f.config is not None)
    assert [p for p, n in programmed.items() if n > 1] == [], "programmed twice"
    assert sorted(set(leaves) - set(programmed)) == [], "no register programs these"
    assert sorted(set(programmed) - set(leaves)) == [], "not in engine_config_layout()"
    for r in regmap.JOB:
        for f in r.fields:
            if f.config is not None:
                shape = leaves[f.config]
                assert f.width == shape.width, f"{r.name}.{f.name} vs {f.config}: {shape}"
                assert f.signed == shape.signed, f"{r.name}.{f.name} vs {f.config}: {shape}"
    assert not [f.config for r in regmap.SHARED for f in r.fields if f.config is not None]


# --- (d) every tensor has exactly one pointer register ---------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "S{}_E{}_P{}_F{}".format(*s))
@pytest.mark.parametrize("mode", list(Mode), ids=lambda m: m.name.lower())
def test_tensor_pointers(mode, shape):
    S, E, P, F = shape
    tensors = tensor_shapes(mode, S=S, E=E, P=P, F=F)
    holders = {}
    for tensor in tensors:
        owners = [name for name, held in regmap.TENSOR_POINTERS.items() if tensor in held]
        assert len(owners) == 1, f"{tensor} is held by {owners or 'no register'}"
        assert regmap.pointer_register(tensor).name == owners[0]
        holders.setdefault(owners[0], []).append(tensor)
    shared = {reg: ts for reg, ts in holders.items() if len(ts) > 1}
    assert shared == {}, f"{mode.name} needs these tensors at once in one register"


def test_every_pointer_register_is_used_and_job_local():
    used = set().union(*(tensor_shapes(m, S=1, E=1, P=1, F=1) for m in Mode))
    held = [t for ts in regmap.TENSOR_POINTERS.values() for t in ts]
    assert sorted(set(held) - used) == [], "tensors no mode uses"
    assert len(held) == len(set(held)), "a tensor in two pointer registers"
    for name in regmap.TENSOR_POINTERS:
        assert regmap.register(name).job, name
    with pytest.raises(KeyError, match="no pointer register holds"):
        regmap.pointer_register("nonexistent")


# --- (e) the C header compiles and packs like the Python model -------------------------------


@pytest.fixture
def header_dir(tmp_path):
    (tmp_path / "ita_hwpe_regs.h").write_text(regmap_gen.c_header())
    return tmp_path


@needs_gcc
@pytest.mark.parametrize("flags", list(GCC_FLAGS.values()), ids=list(GCC_FLAGS))
def test_c_header_compiles(header_dir, flags):
    source = header_dir / "include_twice.c"
    source.write_text('#include "ita_hwpe_regs.h"\n#include "ita_hwpe_regs.h"\n'
                      "int main(void) { return (int)(ita_hwpe_mode_pack(ITA_MODE_FFN, "
                      "ITA_ACT_GELU, 1u, 0u, 2u) & ITA_HWPE_JOB_REGS)\n"
                      "    + (int)ita_hwpe_requant_offset(ITA_STEP_F2)\n"
                      "    + (int)ita_hwpe_pointer_offset(ITA_PTR_OUT)\n"
                      "    + ita_hwpe_acquire_job_id_get(ita_hwpe_requant_pack(1u, 2u, -3)); }\n")
    proc = subprocess.run([GCC, *flags, "-fsyntax-only", f"-I{header_dir}", str(source)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _c_literal(value, signed):
    if signed:
        return f"(int32_t)({value})" if value > -(1 << 31) else "(int32_t)(-2147483647 - 1)"
    return f"{value}u"


def run_c(header_dir, calls):
    """Compile and run a program printing ``calls`` (C expressions) as unsigned words."""
    body = "".join(f'    printf("%lu\\n", (unsigned long)({call}));\n' for call in calls)
    source = header_dir / "pack.c"
    source.write_text('#include <stdio.h>\n#include "ita_hwpe_regs.h"\n\n'
                      f"int main(void)\n{{\n{body}    return 0;\n}}\n")
    exe = header_dir / "pack"
    proc = subprocess.run([GCC, *GCC_FLAGS["c11"], f"-I{header_dir}", "-o", str(exe),
                           str(source)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True)
    return [int(line) for line in out.stdout.split()]


@needs_gcc
def test_c_requant_pack_matches_python(header_dir):
    model = fresh_model()
    [word] = run_c(header_dir, ["ita_hwpe_requant_q_pack(74, 20, -3)"])
    assert word == model.pack("REQUANT_Q", mult=74, shift=20, add=-3) == 0x00FD144A


@needs_gcc
def test_c_pack_functions_match_python(header_dir):
    model, rng = fresh_model(), random.Random(1234)
    calls, expected = [], []
    for reg in regmap.JOB:
        for _ in range(8):
            values = {f.name: rng.randint(*field_range(f.width, f.signed)) for f in reg.fields}
            args = ", ".join(_c_literal(values[f.name], f.signed) for f in reg.fields)
            calls.append(f"ita_hwpe_{reg.name.lower()}_pack({args})")
            expected.append(model.pack(reg.name, **values))
    # Out-of-range arguments are masked to the field width, not spilled into neighbours.
    calls.append("ita_hwpe_requant_q_pack(0x1FFu, 0x100u, 128)")
    expected.append(model.pack("REQUANT_Q", mult=0xFF, shift=0, add=-128))
    calls.append("ita_hwpe_mode_pack(ITA_MODE_QKAV, ITA_ACT_RELU, 1u, 1u, 3u)")
    expected.append(model.pack("MODE", mode=Mode.QKAV, activation=ActivationKind.RELU.value,
                               bias_enable=1, causal=1, logit_frac=3))
    assert run_c(header_dir, calls) == expected


@needs_gcc
def test_c_group_tables_and_packers(header_dir):
    """The enums index the offset tables in register order; one packer serves a group."""
    model = fresh_model()
    calls, expected = [], []
    for step, reg in zip(regmap.REQUANT_STEPS, regmap.REQUANT_REGISTERS, strict=True):
        calls.append(f"ita_hwpe_requant_offset(ITA_STEP_{step})")
        expected.append(reg.offset)
    for reg in regmap.POINTER_REGISTERS:
        calls.append(f"ita_hwpe_pointer_offset(ITA_PTR_{reg.name.removeprefix('PTR_')})")
        expected.append(reg.offset)
    calls += ["ITA_STEPS", "ITA_PTRS", "ita_hwpe_requant_pack(74u, 20u, -3)",
              "ita_hwpe_pointer_pack(0x10001234u)"]
    expected += [len(regmap.REQUANT_REGISTERS), len(regmap.POINTER_REGISTERS),
                 model.pack("REQUANT_F2", mult=74, shift=20, add=-3),
                 model.pack("PTR_OUT", address=0x10001234)]
    assert run_c(header_dir, calls) == expected
    assert model.REQUANT_REGISTERS == tuple(r.name for r in regmap.REQUANT_REGISTERS)
    assert list(model.TENSOR_POINTERS) == [r.name for r in regmap.POINTER_REGISTERS]


@needs_gcc
def test_c_field_getters_match_python(header_dir):
    model, rng = fresh_model(), random.Random(99)
    readable = [r for r in regmap.SHARED if "r" in r.access and r.fields]
    words = [0, 0xFFFF_FFFF, 0x8000_0000] + [rng.getrandbits(32) for _ in range(8)]
    calls, expected = [], []
    for reg in readable:
        for word in words:
            values = model.unpack(reg.name, word)
            for f in reg.fields:
                calls.append(f"(uint32_t)ita_hwpe_{reg.name.lower()}_{f.name}_get({word}u)")
                expected.append(values[f.name] & 0xFFFF_FFFF)  # printed as unsigned
    assert run_c(header_dir, calls) == expected


def test_named_values():
    model = fresh_model()
    assert model.VALUES == {r.name: dict(r.values) for r in regmap.REGISTERS if r.values}
    assert regmap.register("TRIGGER").value("RUN") == 0
    assert regmap.register("ACQUIRE").value("LOCKED") == -2
    for r in regmap.REGISTERS:
        for _name, value in r.values:
            assert -(1 << 31) <= value < 1 << 32, r.name


def test_c_header_values():
    header = regmap_gen.c_header()
    defines = dict(re.findall(r"^#define (\w+) +(\S+)", header, re.MULTILINE))
    for r in regmap.REGISTERS:
        assert int(defines[f"ITA_HWPE_{r.name}_OFFSET"].rstrip("u"), 16) == r.offset
        for f in r.fields:
            prefix = f"ITA_HWPE_{r.name}_{f.name.upper()}"
            assert int(defines[f"{prefix}_LSB"].rstrip("u")) == f.lsb
            assert int(defines[f"{prefix}_WIDTH"].rstrip("u")) == f.width
            assert int(defines[f"{prefix}_MASK"].rstrip("u"), 16) == f.mask
    enums = dict(re.findall(r"^    (ITA_\w+) += (-?\d+),$", header, re.MULTILINE))
    for prefix, enum in (("ITA_MODE", Mode), ("ITA_ACT", ActivationKind),
                         ("ITA_ERROR", ErrorCode)):
        for member in enum:
            assert int(enums[f"{prefix}_{member.name}"]) == member.value
    for r in regmap.REGISTERS:
        for name, value in r.values:
            assert int(defines[f"ITA_HWPE_{r.name}_{name}"].strip("()").rstrip("u")) == value
    assert int(defines["ITA_N"]) == DEFAULT_CONFIG.N
    assert int(defines["ITA_M"]) == DEFAULT_CONFIG.M
    assert int(defines["ITA_CONTEXTS"]) == DEFAULT_CONFIG.contexts
    assert int(defines["ITA_HWPE_JOB_BASE"].rstrip("u"), 16) == regmap.JOB_BASE
    assert int(defines["ITA_HWPE_JOB_REGS"].rstrip("u")) == len(regmap.JOB)
    includes = re.findall(r"^#include\s+(\S+)", header, re.MULTILINE)
    assert includes == ["<stdint.h>"]


# --- (f) the Python register model -----------------------------------------------------------


def test_python_model_is_standalone():
    tree = ast.parse(regmap_gen.python_model())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert imported <= set(sys.stdlib_module_names), imported


def test_python_model_passes_ruff():
    pytest.importorskip("ruff")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache",
                           "--stdin-filename", "verif/hwpe/regs_generated.py", "-"],
                          input=regmap_gen.python_model(), cwd=regmap_gen.ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_model_matches_description():
    model = fresh_model()
    for r in regmap.REGISTERS:
        assert getattr(model, f"{r.name}_OFFSET") == r.offset
        assert model.ACCESS[r.name] == r.access
        assert model.FIELDS[r.name] == {f.name: (f.lsb, f.width, f.signed) for f in r.fields}
    assert list(model.FIELDS) == [r.name for r in regmap.REGISTERS]
    assert model.JOB_REGISTERS == tuple(r.name for r in sorted(regmap.JOB,
                                                               key=lambda r: r.offset))
    assert model.TENSOR_POINTERS == regmap.TENSOR_POINTERS
    assert model.TENSOR_POINTERS is not regmap.TENSOR_POINTERS
    assert (model.JOB_BASE, model.WORD_BYTES) == (regmap.JOB_BASE, regmap.WORD_BYTES)
    assert (model.N, model.M, model.CONTEXTS) == (DEFAULT_CONFIG.N, DEFAULT_CONFIG.M,
                                                  DEFAULT_CONFIG.contexts)


def test_committed_python_model_imports():
    from verif.hwpe import regs_generated

    assert regs_generated.pack("REQUANT_Q", mult=74, shift=20, add=-3) == 0x00FD144A


@pytest.mark.parametrize("reg", regmap.REGISTERS, ids=lambda r: r.name)
def test_python_model_round_trip(reg):
    model, rng = fresh_model(), random.Random(f"round-trip-{reg.name}")
    ranges = {f.name: field_range(f.width, f.signed) for f in reg.fields}
    samples = [{name: rng.randint(low, high) for name, (low, high) in ranges.items()}
               for _ in range(200)]
    samples += [{name: low for name, (low, _high) in ranges.items()},
                {name: high for name, (_low, high) in ranges.items()}]
    for values in samples:
        word = model.pack(reg.name, **values)
        assert 0 <= word < 1 << 32
        assert model.unpack(reg.name, word) == values
    # All ones in every field is exactly the union of the field masks.
    ones = {f.name: -1 if f.signed else (1 << f.width) - 1 for f in reg.fields}
    mask = 0
    for f in reg.fields:
        mask |= f.mask
    assert model.pack(reg.name, **ones) == mask
    assert model.unpack(reg.name, 0xFFFF_FFFF) == ones
    assert model.pack(reg.name) == 0


@pytest.mark.parametrize("reg", [r for r in regmap.REGISTERS if r.fields],
                         ids=lambda r: r.name)
def test_python_model_rejects_out_of_range(reg):
    model = fresh_model()
    for f in reg.fields:
        low, high = field_range(f.width, f.signed)
        for bad in (low - 1, high + 1):
            with pytest.raises(ValueError, match=rf"{reg.name}\.{f.name}\b"):
                model.pack(reg.name, **{f.name: bad})


def test_python_model_rejects_unknown_names_and_words():
    model = fresh_model()
    with pytest.raises(ValueError, match="REQUANT_Q has no field 'mul'"):
        model.pack("REQUANT_Q", mul=1)
    with pytest.raises(ValueError, match="unknown register 'REQUANT_X'"):
        model.pack("REQUANT_X", mult=1)
    with pytest.raises(ValueError, match="unknown register"):
        model.unpack("NOPE", 0)
    for word in (-1, 1 << 32):
        with pytest.raises(ValueError, match="MODE: word"):
            model.unpack("MODE", word)
    with pytest.raises(TypeError):
        model.pack("MODE", mode=1.0)
