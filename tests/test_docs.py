"""Docs and comments point inside the repository: every path they name exists.

A reference is a token like ``dir/file.ext`` in a tracked source or Markdown file. It may be
written relative to the repository, to the file's own folder, or to a folder the text names
as its base (tests, the compiler, the cluster, the software); paths below ``build/`` are
outputs, and those of the installed vendor and model packages are theirs.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SUFFIXES = ("md", "py", "c", "h", "S", "sv", "yaml", "vlt", "cpp", "ld", "sh", "toml")
REFERENCE = re.compile(r"(?<![\w/.<>{}$*-])((?:[\w.-]+/)+[\w.-]+\.(?:" + "|".join(SUFFIXES)
                       + r"))(?![\w/])")
#: Folders a text may name paths relative to.
BASES = ("", "tests", "ita/deploy", "cluster_integration", "sw")
#: Paths that are not the repository's: build outputs, make verilog's output tree (sv/,
#: vendor/, include/ below build/<...>/), the CV32E40P package's own layout, the example
#: folders of a command line.
OUTSIDE = ("build/", "vendor/", "bhv/", "include/", "sv/", "DIR/", "1_Pooling/")


def _references():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for rel in files:
        if not rel.endswith(tuple("." + s for s in SUFFIXES)) or not (ROOT / rel).is_file():
            continue
        for number, line in enumerate((ROOT / rel).read_text(errors="replace").splitlines(), 1):
            for match in REFERENCE.finditer(line):
                yield rel, number, match.group(1)


def test_every_named_path_exists():
    missing = []
    for rel, number, ref in _references():
        if ref.startswith(OUTSIDE):
            continue
        here = (ROOT / rel).parent
        if not any((ROOT / base / ref).exists() for base in BASES) and not (here / ref).exists():
            missing.append(f"{rel}:{number}: {ref}")
    assert not missing, "references to files that are not in the repository:\n" + "\n".join(
        missing)


#: A document named without its folder (``<name>.md``).
DOCUMENT_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")


#: Reports that ``make bench`` writes under ``build/bench/``.
BENCH_OUTPUTS = {"report.md", "dma.md"}


def test_every_named_document_is_in_the_repository():
    """A document cited by name alone is one of the repository's own Markdown files: notes
    that live elsewhere are not there for a user to read."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    ours = {Path(f).name for f in files if f.endswith(".md")} | BENCH_OUTPUTS
    unknown = []
    for rel in files:
        if not rel.endswith(tuple("." + s for s in SUFFIXES)) or not (ROOT / rel).is_file():
            continue
        for number, line in enumerate((ROOT / rel).read_text(errors="replace").splitlines(), 1):
            unknown += [f"{rel}:{number}: {name}" for name in DOCUMENT_NAME.findall(line)
                        if name not in ours]
    assert not unknown, "documents that are not in the repository:\n" + "\n".join(unknown)
