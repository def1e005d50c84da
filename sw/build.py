"""Build a bare-metal C program for the cluster's cores with zig's clang.

``python -m sw.build APP=<name> [CORES=<n>]`` (or :func:`build_app`) compiles
``sw/apps/<name>/*.c`` together with the runtime (``sw/runtime``) and links it with the
linker script generated for the cluster configuration (``build/<config>/sw/link.ld``, with
its ``cluster_map.h``; see :mod:`cluster_integration.memory_map_gen`). ``sw/kernels`` is on
every include path; an app that calls the encoder kernels (``kernels.h``) passes
``extra_sources=KERNEL_SOURCES``.
Outputs go to ``build/sw/<name>/`` (a subdirectory per set of extra defines, e.g.
``build/sw/hello/RT_CORES-1/``):

==================  ==========================================================================
``<name>.elf``      the linked program, with symbols and DWARF
``<name>.bin``      flat image of every loaded byte, starting at ``L2_BASE``
``<name>.hex``      the same as 32-bit little-endian words, one per line (``$readmemh`` style);
                    its first line is a ``//`` comment giving the base address
``<name>.map``      the linker map
==================  ==========================================================================

The image is taken from the ELF's ``PT_LOAD`` segments at their load addresses (so the load
image of ``.l1`` is included, in L2); it must lie entirely in L2, which is what testbenches
load through their backdoor (:func:`read_hex`).

The compiler is ``python -m ziglang cc`` (clang 22 / LLD) for rv32imc with the CORE-V
extensions ``xcvmac xcvalu xcvmem xcvbi xcvsimd`` (no ``xcvhwlp``: LLVM cannot assemble
hardware loops). See :data:`TARGET_FLAGS`, :data:`CFLAGS` and :data:`LDFLAGS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cluster_integration import memory_map_gen
from hw import toolchain
from ita import cli
from ita.cluster_config import DEFAULT, ClusterConfig

__all__ = ["App", "BuildError", "build_app", "read_hex", "read_elf", "compile_command",
           "TARGET_FLAGS", "CFLAGS", "LDFLAGS", "APPS_DIR", "RUNTIME_SOURCES", "KERNEL_SOURCES",
           "main"]

ROOT = Path(__file__).resolve().parent.parent
SW = ROOT / "sw"
APPS_DIR = SW / "apps"
RUNTIME_DIR = SW / "runtime"
KERNELS_DIR = SW / "kernels"
INCLUDE_DIRS = (RUNTIME_DIR, SW / "include", SW / "include" / "generated", KERNELS_DIR)
RUNTIME_SOURCES = tuple(RUNTIME_DIR / f for f in ("crt0.S", "runtime.c", "string.c", "trap.c",
                                                   "ita.c"))
#: The encoder kernels (``sw/kernels/kernels.h``), for ``build_app(extra_sources=...)``.
KERNEL_SOURCES = tuple(sorted(KERNELS_DIR.glob("*.c")))
BUILD_DIR = ROOT / "build" / "sw"

TARGET_FLAGS = ("-target", "riscv32-freestanding-none",
                "-mcpu=generic_rv32+m+c+zicsr+xcvmac+xcvalu+xcvmem+xcvbi+xcvsimd")
CFLAGS = ("-O2", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror", "-ffreestanding",
          "-fno-builtin", "-fomit-frame-pointer", "-fno-unwind-tables",
          "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections")
# -nostdlib drops zig's libc and compiler_rt; -lcompiler_rt brings back only the helpers a
# program needs (64-bit division, for instance).
LDFLAGS = ("-nostdlib", "-Wl,--gc-sections", "-lcompiler_rt")

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MACRO = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


class BuildError(RuntimeError):
    """Bad arguments, a compiler error (message ends with its output) or a bad image."""


# --- ELF reading -----------------------------------------------------------------------------

_PT_LOAD = 1
_SHT_SYMTAB = 2
_SHT_NOBITS = 8
_SHF_ALLOC = 2
_EM_RISCV = 243


@dataclass(frozen=True)
class Elf:
    """What the build needs from an ELF32 file."""

    entry: int
    segments: tuple[tuple[int, bytes], ...]  # (load address, file bytes) of PT_LOAD
    sections: dict[str, tuple[int, int, bool]]  # name -> (address, size, has file bytes)
    symbols: dict[str, int]


def _cstr(table: bytes, offset: int) -> str:
    return table[offset:table.index(b"\0", offset)].decode()


def read_elf(path: str | os.PathLike) -> Elf:
    """Parse the loadable segments, allocated sections and symbols of a RISC-V ELF32 file."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
        raise BuildError(f"{path}: not a little-endian ELF32 file")
    (_type, machine, _version, entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
     shentsize, shnum, shstrndx) = struct.unpack_from("<HHIIIIIHHHHHH", raw, 16)
    if machine != _EM_RISCV:
        raise BuildError(f"{path}: not a RISC-V ELF (machine {machine})")
    segments = []
    for i in range(phnum):
        p_type, p_offset, _vaddr, p_paddr, p_filesz, _memsz, _flags, _align = \
            struct.unpack_from("<8I", raw, phoff + i * phentsize)
        if p_type == _PT_LOAD and p_filesz:
            segments.append((p_paddr, raw[p_offset:p_offset + p_filesz]))
    headers = [struct.unpack_from("<10I", raw, shoff + i * shentsize) for i in range(shnum)]
    names = raw[headers[shstrndx][4]:][:headers[shstrndx][5]]
    sections, symbols = {}, {}
    for sh in headers:
        sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link = sh[:7]
        if sh_flags & _SHF_ALLOC and sh_size:
            sections[_cstr(names, sh_name)] = (sh_addr, sh_size, sh_type != _SHT_NOBITS)
        if sh_type == _SHT_SYMTAB:
            strtab = headers[sh_link]
            strings = raw[strtab[4]:strtab[4] + strtab[5]]
            for off in range(sh_offset, sh_offset + sh_size, 16):
                st_name, st_value = struct.unpack_from("<II", raw, off)
                if st_name:
                    symbols.setdefault(_cstr(strings, st_name), st_value)
    return Elf(entry, tuple(sorted(segments)), sections, symbols)


# --- images ----------------------------------------------------------------------------------


def _image(elf: Elf, base: int, size: int) -> bytes:
    """The flat bytes from ``base`` covering every loaded segment; all must lie in the window."""
    if not elf.segments:
        raise BuildError("the program has no loadable bytes")
    for address, data in elf.segments:
        if address < base or address + len(data) > base + size:
            raise BuildError(f"loadable bytes at {address:#010x}..{address + len(data):#010x} "
                             f"lie outside L2 ({base:#010x}..{base + size:#010x})")
    end = max(address + len(data) for address, data in elf.segments)
    image = bytearray(((end - base) + 3) // 4 * 4)
    for address, data in elf.segments:
        image[address - base:address - base + len(data)] = data
    return bytes(image)


def _hex_text(name: str, base: int, image: bytes) -> str:
    words = struct.unpack(f"<{len(image) // 4}I", image)
    lines = [f"// {name}: {len(words)} words from {base:#010x}; generated by python -m sw.build"]
    lines += [f"{w:08x}" for w in words]
    return "\n".join(lines) + "\n"


def read_hex(path: str | os.PathLike) -> tuple[int, list[int]]:
    """(base address, 32-bit words) of a ``.hex`` image written by this module."""
    lines = Path(path).read_text().splitlines()
    match = re.search(r"from (0x[0-9a-fA-F]+)", lines[0]) if lines else None
    if not match:
        raise BuildError(f"{path}: first line does not give the base address")
    return int(match.group(1), 16), [int(line, 16) for line in lines[1:] if line.strip()]


# --- building --------------------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    """A built program: its files, load base, symbols and section sizes."""

    name: str
    elf: Path
    bin: Path
    hex: Path
    map: Path
    base: int
    entry: int
    symbols: dict[str, int] = field(repr=False)
    sections: dict[str, tuple[int, int, bool]] = field(repr=False)
    seconds: float = 0.0

    def sizes(self) -> dict[str, int]:
        """Bytes per kind: text (code, vectors), rodata, data, bss (L2), l1 (all L1 sections)."""
        out = dict.fromkeys(("text", "rodata", "data", "bss", "l1"), 0)
        for name, (_address, size, _loaded) in self.sections.items():
            if name.startswith(".l1"):
                out["l1"] += size
            elif name.startswith((".text", ".vectors")):
                out["text"] += size
            elif name.startswith((".rodata", ".srodata")):
                out["rodata"] += size
            elif name.startswith((".data", ".sdata")):
                out["data"] += size
            elif name.startswith((".bss", ".sbss")):
                out["bss"] += size
        return out

    def words(self) -> list[int]:
        return read_hex(self.hex)[1]


def _variant(defines: Mapping[str, object]) -> str:
    parts = [k if v is None else f"{k}-{v}" for k, v in sorted(defines.items())]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join(parts))


def app_sources(name: str) -> list[Path]:
    """The C files of app ``name``; BuildError if it does not exist."""
    if not _NAME.match(name):
        raise BuildError(f"bad app name {name!r}")
    sources = sorted((APPS_DIR / name).glob("*.c"))
    if not sources:
        known = ", ".join(sorted(p.name for p in APPS_DIR.iterdir() if p.is_dir()))
        raise BuildError(f"no app {name!r} (no sw/apps/{name}/*.c; known: {known})")
    return sources


def compile_command(sources, output: Path, *, defines: Mapping[str, object] = (),
                    print_map: bool = False, include_dirs=(), extra_sources=(),
                    cluster: ClusterConfig = DEFAULT) -> list[str]:
    """The zig cc command line that compiles and links ``sources`` with the runtime for
    ``cluster`` (its generated ``cluster_map.h`` and ``link.ld``, :func:`generated_files`).

    ``include_dirs`` come first, e.g. a directory with a header generated for one run;
    ``extra_sources`` (e.g. :data:`KERNEL_SOURCES`) are compiled after the app's own.
    """
    generated = memory_map_gen.output_dir(cluster)
    cmd = [sys.executable, "-m", "ziglang", "cc", *TARGET_FLAGS, *CFLAGS]
    cmd += [f"-I{d}" for d in (*include_dirs, generated / "include", *INCLUDE_DIRS)]
    for key, value in dict(defines).items():
        if not _MACRO.match(key):
            raise BuildError(f"bad macro name {key!r}")
        cmd.append(f"-D{key}" if value is None else f"-D{key}={value}")
    cmd += ["-T", str(generated / "link.ld"), *LDFLAGS]
    if print_map:
        cmd.append("-Wl,--print-map")  # zig cc refuses -Map=<file>; the map goes to stdout
    cmd += ["-o", str(output), *map(str, RUNTIME_SOURCES), *map(str, sources),
            *map(str, extra_sources)]
    return cmd


def generated_files(cluster: ClusterConfig = DEFAULT) -> Path:
    """Write (if changed) the C header and linker script of ``cluster``; their directory."""
    with toolchain.file_lock(memory_map_gen.output_dir(cluster) / ".lock"):
        memory_map_gen.write(cluster)
    return memory_map_gen.output_dir(cluster)


def _build_key(cmd: list[str]) -> str:
    """Content hash of a build: the command line, zig's version, every file it names, the
    headers beside its sources and every file in its include directories."""
    from importlib.metadata import version

    h = hashlib.sha256(f"{version('ziglang')}\0".encode())
    files = []
    for word in cmd:
        h.update(word.encode() + b"\0")
        if word.startswith("-I"):
            files += sorted(p for p in Path(word[2:]).glob("*") if p.is_file())
        elif Path(word).suffix in (".c", ".S", ".ld"):
            files.append(Path(word))
            files += sorted(Path(word).parent.glob("*.h"))  # quoted includes beside it
    for file in files:
        with contextlib.suppress(FileNotFoundError):
            h.update(str(file).encode() + b"\0" + file.read_bytes() + b"\1")
    return h.hexdigest()


def build_app(name: str, defines: Mapping[str, object] | None = None, *,
              cores: int | None = None, out_dir: Path | None = None,
              include_dirs=(), extra_sources=(), cluster: ClusterConfig = DEFAULT) -> App:
    """Compile app ``name`` with the runtime for ``cluster``; return the :class:`App` (ELF,
    bin, hex, map).

    ``defines`` become ``-DKEY=VALUE`` (``None``: ``-DKEY``); ``cores`` sets ``RT_CORES``,
    the number of cores the program runs on; ``extra_sources`` are further C files, e.g.
    :data:`KERNEL_SOURCES`. Concurrent builds of the same variant are
    serialised by a lock; outputs are replaced atomically. A build whose inputs hash as
    before (:func:`_build_key`) is reused; either way one line on stderr says so.
    """
    defines = dict(defines or {})
    if cores is not None:
        if not isinstance(cores, int) or not 1 <= cores <= cluster.cores:
            raise BuildError(f"cores must be an integer in 1..{cluster.cores}, not {cores!r}")
        defines["RT_CORES"] = cores
    sources = app_sources(name)
    variant = _variant(defines)
    if cluster.name != DEFAULT.name:
        variant = f"{cluster.name}_{variant}" if variant else cluster.name
    out = Path(out_dir) if out_dir else BUILD_DIR / name / variant if variant else BUILD_DIR / name
    l2 = cluster.region("L2")
    generated_files(cluster)
    t0 = time.monotonic()
    with toolchain.file_lock(out / ".lock"):
        tmp = out / f".{name}.{os.getpid()}.elf"
        map_file = out / f"{name}.map"
        paths = {ext: out / f"{name}.{ext}" for ext in ("elf", "bin", "hex")}
        options = dict(defines=defines, print_map=True, include_dirs=include_dirs,
                       extra_sources=extra_sources, cluster=cluster)
        key = _build_key(compile_command(sources, paths["elf"], **options))
        stamp = out / f".{name}.key"
        what = f"C build of {name} ({toolchain.relative(out)})"
        if (stamp.is_file() and stamp.read_text() == key
                and all(p.is_file() for p in (*paths.values(), map_file))):
            elf = read_elf(paths["elf"])
            toolchain.say(f"{what} cached", "sw.build")
            return App(name, paths["elf"], paths["bin"], paths["hex"], map_file, l2.base,
                       elf.entry, elf.symbols, elf.sections, time.monotonic() - t0)
        stamp.unlink(missing_ok=True)
        cmd = compile_command(sources, tmp, **options)
        with toolchain.ticking(what, lambda: "compiling", tool="sw.build"):
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise BuildError(f"compiling {name} failed:\n{proc.stderr}".rstrip())
        map_file.write_text(proc.stdout)
        elf = read_elf(tmp)
        image = _image(elf, l2.base, l2.size)
        for ext, content in (("bin", image), ("hex", _hex_text(name, l2.base, image))):
            staged = out / f".{name}.{os.getpid()}.{ext}"
            if isinstance(content, bytes):
                staged.write_bytes(content)
            else:
                staged.write_text(content)
            os.replace(staged, paths[ext])
        os.replace(tmp, paths["elf"])
        stamp.write_text(key)
    toolchain.say(f"{what}: {time.monotonic() - t0:.1f} s", "sw.build")
    return App(name, paths["elf"], paths["bin"], paths["hex"], map_file, l2.base, elf.entry,
               elf.symbols, elf.sections, time.monotonic() - t0)


# --- command line ----------------------------------------------------------------------------


KEYS = (cli.text_key("APP", None, expect="an app of sw/apps", required=True,
                     help="the program to build"),
        cli.int_key("CORES", None, help="cores it runs on (default: the cluster's)"))
USAGE = cli.usage("python -m sw.build APP=<name> [CORES=<n>]", KEYS)


def _command(argv: list[str]) -> int:
    options = cli.parse(argv, KEYS)
    app = build_app(options["APP"], cores=options["CORES"])
    sizes = " ".join(f"{k}={v}" for k, v in app.sizes().items())
    print(f"sw.build: {app.elf.relative_to(ROOT)} ({app.bin.stat().st_size} bytes of image "
          f"at {app.base:#010x}; {sizes}; {app.seconds:.2f} s)")
    return 0


def main(argv=None) -> int:
    return cli.main("sw.build", _command, argv, usage_text=USAGE, failures=(BuildError,))


if __name__ == "__main__":
    sys.exit(main())
