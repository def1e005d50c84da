"""Random field values against the HWPE register model and the generated C header.

The HAL programs jobs with the C packers of ``ita_hwpe_regs.h`` while testbenches decode
words with :mod:`verif.hwpe.regs_generated`; both are generated from one register map, so
any disagreement (a field moved, a sign lost, a mask too wide) would make software and
testbench see different jobs. The C side is compiled once per session with the host compiler.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verif.hwpe import regs_generated as regs

HEADER_DIR = Path(__file__).resolve().parents[2] / "sw" / "include" / "generated"
HEADER = HEADER_DIR / "ita_hwpe_regs.h"
#: Generic packers of the header -> a register with their layout.
GENERIC = {"REQUANT": "REQUANT_Q", "POINTER": "PTR_Q_IN"}
FIELDED = sorted(r for r, f in regs.FIELDS.items() if f)


def _range(width, signed):
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def _as_field(value, width, signed):
    """What a field holding the low ``width`` bits of ``value`` reads back as."""
    value &= (1 << width) - 1
    return value - (1 << width) if signed and value >> (width - 1) else value


@st.composite
def _legal(draw, register):
    return {name: draw(st.integers(*_range(width, signed)))
            for name, (_, width, signed) in regs.FIELDS[register].items()}


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.sampled_from(FIELDED).flatmap(lambda r: st.tuples(st.just(r), _legal(r))))
def test_pack_then_unpack_gives_the_fields_back(case):
    """A legal job configuration survives the word that carries it."""
    register, fields = case
    word = regs.pack(register, **fields)
    assert 0 <= word < 1 << 32
    assert regs.unpack(register, word) == fields


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.sampled_from(FIELDED), st.data())
def test_out_of_range_values_are_refused(register, data):
    """A value a field cannot hold is an error naming the field, never a truncated word."""
    layout = regs.FIELDS[register]
    name = data.draw(st.sampled_from(sorted(layout)))
    _, width, signed = layout[name]
    low, high = _range(width, signed)
    value = data.draw(st.one_of(st.integers(high + 1, high + (1 << 40)),
                                st.integers(low - (1 << 40), low - 1)))
    with pytest.raises(ValueError, match=f"{register}.{name}"):
        regs.pack(register, **{name: value})
    with pytest.raises(ValueError, match="no field"):
        regs.pack(register, **{name + "_x": 0})


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.sampled_from(FIELDED), st.integers(-(1 << 40), (1 << 40)))
def test_unpack_accepts_exactly_32_bit_words(register, word):
    """Words outside 32 bits are refused; inside, the fields repack to the in-field bits."""
    if not 0 <= word < 1 << 32:
        with pytest.raises(ValueError):
            regs.unpack(register, word)
        return
    fields = regs.unpack(register, word)
    mask = sum(((1 << w) - 1) << lsb for lsb, w, _ in regs.FIELDS[register].values())
    assert regs.pack(register, **fields) == word & mask


def _c_functions():
    """(kind, C name, register, [(field, signed)]) for each packer and getter of the header."""
    text = HEADER.read_text()
    found = []
    for name, params in re.findall(r"static inline u?int32_t ita_hwpe_(\w+)_pack\(([^)]*)\)",
                                   text):
        args = [p.split() for p in params.split(",")]
        found.append(("p", f"ita_hwpe_{name}_pack", GENERIC.get(name.upper(), name.upper()),
                      [(arg, ctype == "int32_t") for ctype, arg in args]))
    getters = {f"{r.lower()}_{f}": (r, f, s) for r, fs in regs.FIELDS.items()
               for f, (_, _, s) in fs.items()}
    for name in re.findall(r"static inline u?int32_t ita_hwpe_(\w+)_get\(", text):
        register, field, signed = getters[name]
        found.append(("g", f"ita_hwpe_{name}_get", register, [(field, signed)]))
    return found


FUNCTIONS = _c_functions()


def _driver_source():
    """A C program: each input line ``<function index> <value>...`` -> one decimal result."""
    cases = []
    for i, (kind, fn, _, args) in enumerate(FUNCTIONS):
        if kind == "p":
            call = ", ".join(f"({'int32_t' if s else 'uint32_t'})v[{j}]"
                             for j, (_, s) in enumerate(args))
            cases.append(f"        case {i}: r = (long long){fn}({call}); break;")
        else:
            cases.append(f"        case {i}: r = (long long){fn}((uint32_t)v[0]); break;")
    return "\n".join([
        "#include <stdio.h>", "#include <stdint.h>", '#include "ita_hwpe_regs.h"',
        "int main(void) {", "    int f; long long v[8], r;",
        "    while (scanf(\"%d\", &f) == 1) {", "        int n = 0, c;",
        "        while ((c = getchar()) != '\\n' && c != EOF)",
        "            if (c != ' ' && ungetc(c, stdin) != EOF && scanf(\"%lld\", &v[n]) == 1) n++;",
        "        switch (f) {", *cases, "        default: r = -1;", "        }",
        "        printf(\"%lld\\n\", r); fflush(stdout);", "    }", "    return 0;", "}", ""])


@pytest.fixture(scope="session")
def c_header(tmp_path_factory):
    """A running driver over the header's functions: call(index, values) -> result."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no host C compiler")
    tmp = tmp_path_factory.mktemp("regs_c")
    (tmp / "driver.c").write_text(_driver_source())
    subprocess.run([gcc, "-std=c99", "-Wall", "-Werror", "-I", str(HEADER_DIR),
                    "-o", str(tmp / "driver"), str(tmp / "driver.c")], check=True)
    proc = subprocess.Popen([str(tmp / "driver")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)

    def call(index, values):
        proc.stdin.write(" ".join(map(str, [index, *values])) + "\n")
        proc.stdin.flush()
        return int(proc.stdout.readline())

    yield call
    proc.stdin.close()
    proc.wait(timeout=10)


def test_header_functions_match_the_register_model():
    """Every fielded job register has a packer whose parameters are its fields, in the model's
    signedness; a renamed or retyped field would otherwise pass silently."""
    packed = {reg for kind, _, reg, _ in FUNCTIONS if kind == "p"}
    assert set(regs.JOB_REGISTERS) <= packed
    for kind, fn, register, args in FUNCTIONS:
        layout = regs.FIELDS[register]
        if kind == "p":
            assert sorted(f for f, _ in args) == sorted(layout), fn
        for field, signed in args:
            assert layout[field][2] == signed, (fn, field)


@st.composite
def _c_case(draw):
    index = draw(st.integers(0, len(FUNCTIONS) - 1))
    _, _, register, args = FUNCTIONS[index]
    layout = regs.FIELDS[register]
    if FUNCTIONS[index][0] == "g":
        return index, [draw(st.integers(0, (1 << 32) - 1))]
    values = []
    for field, _ in args:
        _, width, signed = layout[field]
        low, high = _range(width, signed)
        # mostly legal values; some beyond the field, which the C packers mask
        wide = (-(1 << 31), (1 << 31) - 1) if signed else (0, (1 << 32) - 1)
        values.append(draw(st.one_of(st.integers(low, high), st.integers(low, high),
                                     st.integers(*wide))))
    return index, values


@settings(derandomize=True, max_examples=200, deadline=None)
@given(_c_case())
def test_c_packers_and_getters_agree_with_the_python_model(c_header, case):
    """The C header and the Python model give the same word (packers, values masked to their
    fields as the header documents) and the same field (getters) for random values."""
    index, values = case
    kind, fn, register, args = FUNCTIONS[index]
    layout = regs.FIELDS[register]
    got = c_header(index, values)
    if kind == "g":
        (field, _), (word,) = args[0], values
        assert got == regs.unpack(register, word)[field], fn
        return
    fields = {f: _as_field(v, layout[f][1], layout[f][2])
              for (f, _), v in zip(args, values, strict=True)}
    assert got == regs.pack(register, **fields), (fn, values)
