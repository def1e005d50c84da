"""The ``gemm`` program of ``make sim TEST=gemm`` on the fast C++ cluster harness:
``python -m bench.cluster_image M=<m> K=<k> N=<n> SEED=<s>``.

``make sim`` loads the program and its data into L2 through VPI; the C++ harness
(:mod:`verif.harness.run`) loads one ``$readmemh`` image. This writes that image -- the same
program build (:func:`verif.cluster.kernels.prepare_gemm` and ``sw.build.build_app`` in the
same work directory as :func:`verif.cluster.kernels.run_gemm`) with the data blocks placed at
their L2 addresses -- and runs it, so both flows simulate the same cycles. The L2 result is not
compared here (``make sim TEST=gemm`` does that); the run only has to exit with code 0.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.runner import Measurement, children_cpu_seconds
from cluster_integration.memory_map import region
from hw import toolchain
from ita import cli
from sw.build import build_app, read_hex
from verif.cluster.kernels import prepare_gemm
from verif.cluster.sim import GEMM_SIZES
from verif.harness.run import run_image
from verif.result import format_result

__all__ = ["merged_image", "run_gemm_image", "main"]


def merged_image(hex_path: str | os.PathLike, data_npz: str | os.PathLike,
                 out: str | os.PathLike) -> Path:
    """One ``sw.build``-style ``.hex`` (first line names the base, then one word per line)
    holding the program of ``hex_path`` and every ``addr_<hex>`` block of ``data_npz``."""

    base, words = read_hex(hex_path)
    l2 = region("L2")
    if base != l2.base:
        raise ValueError(f"{hex_path}: the program starts at {base:#x}, not at L2 {l2.base:#x}")
    image = np.zeros(len(words), dtype="<u4")
    image[:] = words
    with np.load(data_npz) as data:
        blocks = {int(k[5:], 16): data[k].astype(np.uint8) for k in data.files}
    for address, blob in sorted(blocks.items()):
        if address % 4 or address < l2.base or address + len(blob) > l2.end:
            raise ValueError(f"data block at {address:#x} ({len(blob)} B) is not inside L2")
        padded = np.zeros(-(-len(blob) // 4) * 4, dtype=np.uint8)
        padded[:len(blob)] = blob
        first = (address - l2.base) // 4
        end = first + len(padded) // 4
        if end > len(image):
            image = np.concatenate([image, np.zeros(end - len(image), dtype="<u4")])
        if image[first:end].any():
            raise ValueError(f"data block at {address:#x} overlaps the program image")
        image[first:end] = padded.view("<u4")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"// {Path(hex_path).name} with {Path(data_npz).name}: words from {base:#010x}"]
    lines += [f"{int(w):08x}" for w in image]
    out.write_text("\n".join(lines) + "\n")
    return out


def run_gemm_image(*, M: int, K: int, N: int, seed: int = 1) -> Measurement:
    """Build the gemm program for (M, K, N, seed) and run it on the C++ harness."""

    command = f"python -m bench.cluster_image M={M} K={K} N={N} SEED={seed}"
    work = toolchain.BUILD_ROOT / "sw" / "gemm" / f"M{M}_K{K}_N{N}_seed{seed}"
    include, data, _check, _case = prepare_gemm(work, M=M, K=K, N=N, seed=seed)
    app = build_app("gemm", out_dir=work, include_dirs=(include,))
    image = merged_image(app.hex, data, work / "gemm_with_data.hex")
    cpu0, t0 = children_cpu_seconds(), time.monotonic()
    run = run_image("gemm", image, stream=False)
    wall, cpu = time.monotonic() - t0, children_cpu_seconds() - cpu0
    result = {"test": "gemm", "status": run.status, **run.fields}
    tail = "" if run.status == "PASS" else "\n".join(run.output.splitlines()[-25:])
    return Measurement(command, run.status, result, wall, cpu, run.returncode, tail)


KEYS = (*GEMM_SIZES, cli.SEED)
USAGE = cli.usage("python -m bench.cluster_image [KEY=VALUE ...]", KEYS)


def _command(argv: list[str]) -> int:

    options = cli.parse(argv, KEYS)
    m = run_gemm_image(M=options["M"], K=options["K"], N=options["N"], seed=options["SEED"])
    fields = {k: v for k, v in m.result.items() if k not in ("test", "status")}
    print(format_result("gemm", m.status, **fields), flush=True)
    return 0 if m.status == "PASS" else 1


def main(argv=None) -> int:
    return cli.main("cluster_image", _command, argv, usage_text=USAGE, failures=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
