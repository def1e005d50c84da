"""Every size and base address of a cluster has one home: :mod:`ita.cluster_config`.

The test reads every tracked source file (Python, C, assembly, C++, SystemVerilog, linker
scripts) and fails on a literal that restates a memory size or base address of a named
configuration -- in hex (with or without ``_`` separators), in decimal, as ``n * 1024`` or
as ``n KiB``/``n MiB`` in a comment -- naming the file, the line and the field it restates.
Generated files are exempt (they are produced from the configuration), and so are the
configuration itself and this test. Prose in ``*.md`` files describes configurations for
readers and is not scanned.
"""

import re
import subprocess
from pathlib import Path

from ita.cluster_config import CONFIGS, KiB, MiB

ROOT = Path(__file__).resolve().parents[1]

SCANNED = (".py", ".c", ".h", ".S", ".cpp", ".sv", ".ld", ".vlt")
EXEMPT = {
    "ita/cluster_config.py",
    "tests/test_single_source.py",
    # generated from the register and memory descriptions
    "sw/include/generated/ita_hwpe_regs.h",
    "verif/hwpe/regs_generated.py",
}

#: Configuration fields that are addresses or memory sizes.
FIELDS = ("l1_base", "peripherals_base", "soc_ctrl_base", "l2_base", "l1_size", "l2_size",
          "l2_program_size")

#: Smaller values are too common to attribute (a 1 KiB stack, 0x8000 as an int16 bias or an
#: offset inside a test buffer, the small configuration's 32 KiB L1) and are not checked.
SMALLEST = 128 * KiB


def _spellings(value):
    """Regular expressions that match ``value`` written as a literal."""
    hex_digits = f"{value:X}"
    grouped = "_?".join(hex_digits[max(0, i - 4):i]
                        for i in range(len(hex_digits), 0, -4)[::-1])
    forms = [rf"0x0*{grouped}\b", rf"(?<![\w.]){value}(?![\w.])"]
    if value % KiB == 0:
        forms.append(rf"(?<![\w.]){value // KiB}\s*\*\s*1024\b")
        forms.append(rf"(?<![\w.]){value // KiB}\s*KiB\b")
    if value % MiB == 0:
        forms.append(rf"(?<![\w.]){value // MiB}\s*MiB\b")
        forms.append(rf"(?<![\w.]){value // MiB}\s*\*\s*1024\s*\*\s*1024\b")
    return [re.compile(f, re.IGNORECASE) for f in forms]


def _owned_values():
    owned = {}
    for cluster in sorted(CONFIGS.values(), key=lambda c: c.name != "default"):
        for name in FIELDS:
            value = getattr(cluster, name)
            if value >= SMALLEST:
                owned.setdefault(value, f"{cluster.name}.{name}")
    return owned


def _tracked_sources():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [f for f in files if f.endswith(SCANNED) and f not in EXEMPT
            and (ROOT / f).is_file()]


def test_no_file_restates_a_size_or_address():
    patterns = [(owner, p) for value, owner in _owned_values().items()
                for p in _spellings(value)]
    found = []
    for rel in _tracked_sources():
        for number, line in enumerate((ROOT / rel).read_text(errors="replace").splitlines(), 1):
            for owner, pattern in patterns:
                if pattern.search(line):
                    found.append(f"{rel}:{number}: restates {owner}: {line.strip()}")
    assert not found, ("sizes and addresses belong to ita/cluster_config.py:\n"
                       + "\n".join(found))


def test_the_check_sees_each_spelling():
    """The patterns catch the usual ways of writing an address or a size (not vacuous)."""
    l1 = CONFIGS["default"].l1_base
    size = CONFIGS["default"].l1_size
    lines = [f"base = {l1:#x}", f"base = 0x{l1 >> 16:04X}_{l1 & 0xFFFF:04X}",
             f"size = {size // KiB} * 1024", f"/* the {size // KiB} KiB L1 */", f"n = {size}"]
    patterns = _spellings(l1) + _spellings(size)
    for line in lines:
        assert any(p.search(line) for p in patterns), line
    assert not any(p.search("x = 262144.5 or 1262144") for p in _spellings(size))


def test_readme_configuration_table_matches():
    """The README's table of named configurations says what ``CONFIGS`` says."""
    rows = re.findall(r"^\| `(\w+)` \| N=(\d+), M=(\d+) \| (\d+) \| (\d+) banks, (\d+) KiB \| "
                      r"(\d+) (KiB|MiB) \| (\d+) bit \|$",
                      (ROOT / "README.md").read_text(), re.MULTILINE)
    assert {r[0] for r in rows} == set(CONFIGS)
    for name, n, m, cores, banks, l1, l2, unit, width in rows:
        c = CONFIGS[name]
        l2_bytes = int(l2) * (KiB if unit == "KiB" else MiB)
        assert (c.ita.N, c.ita.M, c.cores, c.l1_banks, c.l1_size, c.l2_size, c.hwpe_width) == (
            int(n), int(m), int(cores), int(banks), int(l1) * KiB, l2_bytes, int(width)), name
