"""``make sim TEST=encoder_layer``: Transformer encoder layers on the cluster, from L2.

:func:`prepare` draws a layer and its tokens (the random-encoder frontend,
:class:`ita.deploy.RandomEncoder`; with ``layers`` > 1 that many layers of the shape, chained
in one program, :func:`draw_layers`), compiles the integer model
(:func:`ita.deploy.compile_model`: C, L2 image, manifest; no activations), makes it
self-checking (:func:`verif.deploy.self_checking`: the tokens into the input slot, the golden
model's results after the data, ``dl_check`` on every output) and builds the program
(``sw/apps/encoder_layer`` + the generated schedule and checks + the deploy runtime +
``sw/kernels``). The program image and the data go into one ``$readmemh`` file for the C++
harness (``verif/harness/run.py``, ``+L2_HEX``). The program checks every byte of the output
(with ``DEBUG=1`` every intermediate too) and prints the cycle breakdown as ``stats:``
lines; :func:`parse` turns them into the breakdown table and the RESULT fields.

``ops`` = 2 x MACs of the layer, MACs = H (4 S E P + 2 S^2 P) + 2 S E F (the GEMMs: Q, K, V,
OW, QK, AV per head; F1, F2); ``ops_per_cycle`` = ops / layer cycles; the engine's peak is
2 N M ops per cycle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ita.cluster_config import DEFAULT
from ita.config import DEFAULT_CONFIG
from ita.deploy import (
    ClusterSpec,
    CompileError,
    IntegerModel,
    RandomEncoder,
    compile_model,
    layer_macs,
)
from ita.deploy.emit import C_DIR, C_SOURCES
from ita.golden.encoder import SHAPES, EncoderShape
from sw.build import KERNEL_SOURCES, build_app, read_hex
from verif.deploy import C_DIR as CHECK_DIR
from verif.deploy import C_SOURCES as CHECK_SOURCES
from verif.deploy import expected_tensors, self_checking
from verif.harness.run import l3_image, run_image

__all__ = ["MODELS", "cluster_spec", "shape_for", "draw_layers", "debug_probes", "prepare",
           "combined_image", "parse", "job_table", "run_layer", "Prepared"]

#: MODEL=... shapes; "tiny" is small enough for the test suite.
MODELS = ("tiny", "mobilebert", "minilm")


def cluster_spec(config=DEFAULT_CONFIG, cluster=DEFAULT, weights="l2") -> ClusterSpec:
    """The compiler's view of the simulated cluster (its engine replaced by ``config``;
    ``weights``: where the constants live, ``"l2"`` or ``"l3"``)."""
    return ClusterSpec.for_cluster(cluster, config=config, weights=weights)


def shape_for(model, *, S=None, E=None, P=None, H=None, F=None):
    """The EncoderShape of MODEL, with any of S/E/P/H/F overriding it."""

    base = SHAPES.get(model) or (EncoderShape(64, 64, 32, 2, 128) if model == "tiny" else None)
    if base is None:
        raise ValueError(f"unknown MODEL {model!r}; known: {', '.join(MODELS)}")
    sizes = {k: v for k, v in dict(S=S, E=E, P=P, H=H, F=F).items() if v}
    return EncoderShape(**{**{k: getattr(base, k) for k in ("S", "E", "P", "H", "F")}, **sizes})


def draw_layers(shape, seed, config=DEFAULT_CONFIG, layers=1):
    """(integer model of ``layers`` random encoder layers of ``shape``, tokens x).

    Layer 0 is the random-encoder frontend's layer of ``seed`` (so one layer is the
    single-layer program); layer k > 0 is drawn from the seed sequence (seed, k). Each layer
    is calibrated on its own random tokens, not on its predecessor's output: the program is
    checked bit for bit against the same chain in the golden model, whatever the scales."""
    if layers < 1:
        raise ValueError(f"LAYERS must be at least 1, got {layers}")
    model, x = RandomEncoder(shape, seed, config).draw()
    blocks = list(model.blocks)
    for k in range(1, layers):
        blocks += RandomEncoder(shape, (seed, k), config).integer_model().blocks
    name = "encoder_layer" if layers == 1 else f"encoder_{layers}_layers"
    return IntegerModel(tuple(blocks), name), x


def debug_probes(model):
    """Every intermediate and output of every layer (DEBUG=1), in the program's names."""
    blocks = model.blocks
    if len(blocks) == 1:
        return (*blocks[0].INTERMEDIATES, "out")
    names = [f"b{k}_{t}" for k, b in enumerate(blocks) for t in (*b.INTERMEDIATES, "out")]
    return (*names[:-1], "out")


@dataclass(frozen=True)
class Prepared:
    program: object      #: ita.deploy.Program
    checked: object      #: verif.deploy.SelfChecking
    app: object          #: sw.build.App
    image: Path          #: the combined L2 image for +L2_HEX
    work: Path
    l3_hex: Path | None = None  #: the L3 contents for +L3_HEX (weights in L3)


def combined_image(app, data: bytes, spec: ClusterSpec, path: Path) -> Path:
    """One dense word image from the start of L2: the program, zeros, the data."""

    base, words = read_hex(app.hex)
    if base != spec.l2_base:
        raise ValueError(f"{app.hex}: image starts at {base:#x}, not at L2 {spec.l2_base:#x}")
    if 4 * len(words) > spec.l2_data_offset:
        raise CompileError(f"the program image ({4 * len(words)} B) reaches past the layer's "
                           f"data at L2 offset {spec.l2_data_offset:#x}")
    data_words = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]
    pad = spec.l2_data_offset // 4 - len(words)
    lines = [f"// encoder_layer program and data from {spec.l2_base:#010x}",
             *(f"{w:08x}" for w in words), *(["00000000"] * pad),
             *(f"{w:08x}" for w in data_words)]
    path.write_text("\n".join(lines) + "\n")
    return path


def prepare(work, *, model="tiny", seed=1, sizes=None, debug=False, corrupt=None,
            config=DEFAULT_CONFIG, weights="l2", layers=1, chain="auto",
            prefetch=True) -> Prepared:
    """Compile and build ``layers`` chained layers into ``work``. ``corrupt`` = (tensor, row,
    col) flips one expected byte (to show that the check can fail); ``weights``: ``"l2"`` or
    ``"l3"``; ``chain``, ``prefetch``: see :func:`ita.deploy.search.plan`."""

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    shape = shape_for(model, **(sizes or {}))
    spec = cluster_spec(config, weights=weights)
    integer_model, x = draw_layers(shape, seed, config, layers)
    probes = debug_probes(integer_model) if debug else ("out",)
    program = compile_model(integer_model, spec, probes=probes, chain=chain,
                            prefetch=prefetch)
    expected = expected_tensors(integer_model, x, program.manifest["outputs"], config)
    if corrupt:
        tensor, row, col = corrupt
        expected[tensor] = expected[tensor].copy()
        expected[tensor][row, col] = expected[tensor][row, col] ^ 1
    checked = self_checking(program, {"x": x}, expected, spec)
    checked.write(work)
    app = build_app("encoder_layer", out_dir=work, include_dirs=(C_DIR, CHECK_DIR),
                    extra_sources=(work / "encoder_layer.c", *C_SOURCES, *CHECK_SOURCES,
                                   *KERNEL_SOURCES, work / "checks.c"))
    image = combined_image(app, checked.image, spec, work / "encoder_layer.l2.hex")
    l3 = l3_image(program.l3_image, work / "encoder_layer.l3.hex") if program.l3_image else None
    return Prepared(program, checked, app, image, work, l3)


def stats_fields(output: str) -> dict[str, int]:
    """The ``key=<n>`` pairs of a program's ``stats:`` lines."""
    stats: dict[str, int] = {}
    for line in output.splitlines():
        if line.startswith("stats:"):
            for pair in line[len("stats:"):].split():
                key, _, value = pair.partition("=")
                if value.isdigit():
                    stats[key] = int(value)
    return stats


def parse(output: str, manifest: dict, config=DEFAULT_CONFIG):
    """(breakdown rows, RESULT fields, check lines) from the program's output."""
    stats = stats_fields(output)
    total = stats.get("layer_cycles", 0)
    kernels = {k.removeprefix("kernel_"): v for k, v in stats.items() if k.startswith("kernel_")}
    rows = [("ITA busy (trigger to end, overlaps the rest)", stats.get("ita_busy", 0))]
    parts = [("core 0 waiting for the ITA", stats.get("ita_wait", 0)),
             *((f"kernel {name} (all cores)", v) for name, v in kernels.items()),
             ("core 0 waiting for the DMA", stats.get("dma_wait", 0)),
             ("core 0 programming jobs and transfers", stats.get("issue", 0)),
             ("barriers (idle cores)", stats.get("sync", 0))]
    accounted = sum(v for _, v in parts)
    parts.append(("other (loop and timer code)", max(0, total - accounted)))
    rows += parts
    ops = manifest["ops"]
    peak = 2 * config.N * config.M
    fields = {}
    if total:
        fields = {"layer_cycles": total, "ops": ops,
                  "ops_per_cycle": f"{ops / total:.1f}",
                  "peak_pct": f"{100 * ops / total / peak:.1f}",
                  "ita_busy_pct": f"{100 * stats.get('ita_busy', 0) / total:.1f}",
                  "ita_jobs": stats.get("ita_jobs", 0),
                  "dma_bytes": stats.get("dma_bytes", 0)}
        blocks = [int(v) for line in output.splitlines() if line.startswith("blocks:")
                  for v in line.split()[1:]]
        fields["layers"] = manifest.get("layers", 1)
        if len(blocks) > 1:
            fields["block_cycles"] = ",".join(str(v) for v in blocks)
    checks = [line for line in output.splitlines()
              if line.startswith(("check:", "mismatch:"))]
    return rows, fields, checks


def format_breakdown(rows, total):
    width = max(len(name) for name, _ in rows)
    lines = [f"{'cycle breakdown (core 0)':<{width}}  {'cycles':>9}  share"]
    for name, value in rows:
        share = f"{100 * value / total:5.1f} %" if total else "-"
        lines.append(f"{name:<{width}}  {value:>9}  {share}")
    lines.append(f"{'layer total':<{width}}  {total:>9}")
    return "\n".join(lines)


def job_table(output: str, manifest: dict) -> str:
    """ITA jobs per stage: measured trigger-to-end cycles (the program's ``jobs:`` line)
    against the engine cycles of their padded tiles (the manifest), and the transfers issued
    in their phases. A ratio well above 1 means the engine lost L1 cycles to the DMA or the
    cores (the narrow side wins 3 of 4 conflicts on the banks)."""
    measured = [int(v) for line in output.splitlines() if line.startswith("jobs:")
                for v in line.split()[1:]]
    phases = [p for p in manifest["phases"] if p["job"]]
    stages: dict[str, list[int]] = {}
    for phase, cycles in zip(phases, measured, strict=False):  # the log keeps 256 jobs
        row = stages.setdefault(phase["job"].split()[0], [0, 0, 0, 0])
        row[0] += 1
        row[1] += cycles
        row[2] += phase["job_cycles"]
        row[3] += phase["dma_bytes"]
    lines = [f"{'ITA jobs':<10} {'jobs':>5} {'measured':>9} {'tiles':>9} {'ratio':>6} "
             f"{'DMA bytes beside':>16}"]
    for stage, (n, got, ideal, moved) in stages.items():
        lines.append(f"{stage:<10} {n:>5} {got:>9} {ideal:>9} {got / ideal:>6.2f} {moved:>16}")
    return "\n".join(lines)


def run_layer(work, *, model="tiny", seed=1, sizes=None, debug=False, corrupt=None,
              max_cycles=20_000_000, stream=False, weights="l2", layers=1, chain="auto",
              prefetch=True):
    """Prepare and run on the C++ harness; returns (status, fields, output, prepared)."""

    prepared = prepare(work, model=model, seed=seed, sizes=sizes, debug=debug,
                       corrupt=corrupt, weights=weights, layers=layers, chain=chain,
                       prefetch=prefetch)
    run = run_image("encoder_layer", prepared.image, max_cycles=max_cycles, stream=stream,
                    l3_hex=prepared.l3_hex)
    manifest = prepared.program.manifest
    rows, fields, _checks = parse(run.output, manifest)
    shape = manifest["shape"]
    result = {"model": model, **{k: shape[k] for k in ("S", "E", "P", "H", "F")},
              "weights": weights,
              "cycles": run.fields.get("cycles"), **fields,
              "estimate": manifest["estimate"]["cycles"], "outcome": run.fields["outcome"]}
    if layers > 1:
        result["chain"] = ",".join(manifest["choices"]["chain"])
        result["prefetch"] = int(bool(prefetch))
    status = run.status if fields else "FAIL"
    breakdown = format_breakdown(rows, fields.get("layer_cycles", 0))
    if fields:
        breakdown += "\n" + job_table(run.output, manifest)
        if layers > 1:
            breakdown += "\n" + block_table(run.output, manifest)
    (Path(work) / "breakdown.txt").write_text(breakdown + "\n")
    (Path(work) / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return status, result, run.output, breakdown, prepared


def block_table(output: str, manifest: dict) -> str:
    """Cycles per block (the program's ``blocks:`` line: from the end of the block before to
    the end of the block's last phase) against the cost model's estimate of its phases, and
    how its output reaches the next block."""
    measured = [int(v) for line in output.splitlines() if line.startswith("blocks:")
                for v in line.split()[1:]]
    lines = [f"{'block':<6} {'phases':>9} {'measured':>9} {'estimate':>9} {'ops/cycle':>9} "
             f"{'to next':>7}"]
    for block, cycles in zip(manifest["blocks"], measured, strict=False):
        first, last = block["phases"]
        rate = f"{block['ops'] / cycles:.1f}" if cycles else "-"
        lines.append(f"{block['index']:<6} {f'{first}-{last}':>9} {cycles:>9} "
                     f"{block['estimate']:>9} {rate:>9} {block['chain'] or '-':>7}")
    return "\n".join(lines)


def macs(shape):
    return layer_macs(shape)
