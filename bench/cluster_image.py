"""The ``gemm`` program of ``make sim TEST=gemm`` on the fast C++ cluster harness:
``python -m bench.cluster_image M=<m> K=<k> N=<n> SEED=<s>``.

Both flows load the program and its data from one ``$readmemh`` image (``make sim`` under the
``fast`` profile; ``baseline`` writes them through VPI). This writes that image -- the same
program build (:func:`verif.cluster.kernels.prepare_gemm` and ``sw.build.build_app`` in the
same work directory as :func:`verif.cluster.kernels.run_gemm`) with the data blocks placed at
their L2 addresses -- and runs it, so both flows simulate the same cycles. The L2 result is not
compared here (``make sim TEST=gemm`` does that); the run only has to exit with code 0.
"""

from __future__ import annotations

import sys
import time

from bench.runner import Measurement, children_cpu_seconds
from hw import toolchain
from ita import cli
from sw.build import build_app
from verif.cluster.kernels import prepare_gemm
from verif.cluster.sim import GEMM_SIZES
from verif.harness.run import merged_l2_image, run_image
from verif.result import format_result

__all__ = ["run_gemm_image", "main"]


def run_gemm_image(*, M: int, K: int, N: int, seed: int = 1,
                   profile: str | None = None) -> Measurement:
    """Build the gemm program for (M, K, N, seed) and run it on the C++ harness built with
    ``profile`` (a ``hw.toolchain.SIM_PROFILES`` name; default ``$SIM_PROFILE`` or fast)."""

    command = f"python -m bench.cluster_image M={M} K={K} N={N} SEED={seed}"
    if profile:
        command += f" SIM_PROFILE={profile}"
    work = toolchain.BUILD_ROOT / "sw" / "gemm" / f"M{M}_K{K}_N{N}_seed{seed}"
    include, data, _check, _case = prepare_gemm(work, M=M, K=K, N=N, seed=seed)
    app = build_app("gemm", out_dir=work, include_dirs=(include,))
    image = merged_l2_image(app.hex, data, work / "gemm_with_data.hex")
    cpu0, t0 = children_cpu_seconds(), time.monotonic()
    run = run_image("gemm", image, stream=False, profile=profile, readmemh=True)
    wall, cpu = time.monotonic() - t0, children_cpu_seconds() - cpu0
    result = {"test": "gemm", "status": run.status, **run.fields}
    tail = "" if run.status == "PASS" else "\n".join(run.output.splitlines()[-25:])
    return Measurement(command, run.status, result, wall, cpu, run.returncode, tail)


KEYS = (*GEMM_SIZES, cli.SEED,
        cli.choice_key("SIM_PROFILE", None, toolchain.SIM_PROFILES,
                       help="how the C++ model is built (docs/bench.md)"))
USAGE = cli.usage("python -m bench.cluster_image [KEY=VALUE ...]", KEYS)


def _command(argv: list[str]) -> int:

    options = cli.parse(argv, KEYS)
    m = run_gemm_image(M=options["M"], K=options["K"], N=options["N"], seed=options["SEED"],
                       profile=options["SIM_PROFILE"])
    fields = {k: v for k, v in m.result.items() if k not in ("test", "status")}
    print(format_result("gemm", m.status, **fields), flush=True)
    return 0 if m.status == "PASS" else 1


def main(argv=None) -> int:
    return cli.main("cluster_image", _command, argv, usage_text=USAGE, failures=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
