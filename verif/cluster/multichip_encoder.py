"""An encoder layer split over a ring of chips: ``make sim TEST=multichip MODEL=encoder CHIPS=k``.

The random-encoder frontend draws a layer of MiniLM-L6's shape (S tokens, E=384, 12 heads of
32, F=1536; ``S``, ``E``, ``H``, ``F`` override it) and its tokens; the partitioner
(:mod:`ita.deploy.partition`) splits it tensor-parallel and the compiler writes one program
per chip. Each program is made self-checking against the single-chip golden model
(:func:`verif.deploy.self_checking`: every byte of the chip's ``out``), built with the
``encoder_layer`` app and run with the others in the multi-chip harness, links stalled at
random when ``LINK_STALL`` says so. Two one-chip runs of the same layer give the reference
figures: ``baseline_cycles`` with the weights streamed from L3 over the default off-chip
link, and the resident one-chip cycles that ``efficiency`` compares K chips with::

    speedup = baseline_cycles / cycles      efficiency = resident_cycles / (K x cycles)

``cycles`` is the slowest chip's layer (its ``dl_model``, from the first phase to the
last); ``allreduce_cycles`` the slowest chip's time inside the collectives (waits
included); ``link_bytes`` what the harness carried over every link, checked against the
chips' own counters.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from hw import toolchain
from ita.cluster_config import DEFAULT
from ita.config import DEFAULT_CONFIG
from ita.deploy import CompileError, IntegerModel, RandomEncoder
from ita.deploy.emit import C_DIR, C_SOURCES
from ita.deploy.partition import compile_partition, partition
from ita.golden.encoder import MINILM, EncoderShape
from sw.build import KERNEL_SOURCES, build_app
from verif.cluster.encoder import cluster_spec, combined_image, parse, run_layer, stats_fields
from verif.cluster.trace import Symbols, TraceError
from verif.console import SUMMARY_FIELD
from verif.deploy import C_DIR as CHECK_DIR
from verif.deploy import C_SOURCES as CHECK_SOURCES
from verif.deploy import expected_tensors, self_checking
from verif.harness.multichip import run_chips

__all__ = ["encoder_shape", "prepare_chips", "run_encoder", "reference_cycles"]


def encoder_shape(S=None, E=None, H=None, F=None):
    """MiniLM-L6's layer shape with any of S, E, H, F replaced (heads stay 32 wide)."""
    sizes = {k: v for k, v in dict(S=S, E=E, H=H, F=F).items() if v}
    return EncoderShape(**{**{k: getattr(MINILM, k) for k in ("S", "E", "P", "H", "F")},
                           **sizes})


def prepare_chips(work: Path, *, shape, chips, seed, config=DEFAULT_CONFIG, corrupt=None):
    """Partition, compile, make self-checking and build; returns (per-chip L2 images, the
    programs, the partition). ``corrupt`` = (chip, row, col) flips one expected byte of that
    chip's ``out`` (to show that the check names it)."""
    spec = cluster_spec(config)
    model, x = RandomEncoder(shape, seed, config).draw()
    part = partition(model, chips, spec)
    programs = compile_partition(part, spec)
    images, apps = [], []
    for c, program in enumerate(programs):
        expected = expected_tensors(IntegerModel((part.layer,)), x,
                                    program.manifest["outputs"], config)
        if corrupt and corrupt[0] == c:
            expected["out"] = expected["out"].copy()
            expected["out"][corrupt[1], corrupt[2]] ^= 1
        chip_dir = work / f"chip{c}"
        checked = self_checking(program, {"x": x}, expected, spec)
        checked.write(chip_dir)
        app = build_app("encoder_layer", out_dir=chip_dir, include_dirs=(C_DIR, CHECK_DIR),
                        extra_sources=(chip_dir / "encoder_layer.c", *C_SOURCES,
                                       *CHECK_SOURCES, *KERNEL_SOURCES, chip_dir / "checks.c"))
        images.append(combined_image(app, checked.image, spec, chip_dir / "encoder.l2.hex"))
        apps.append(app)
    _same_arena(apps)
    return images, programs, part


def _same_arena(apps):
    """The links write a neighbour's buffers at their own addresses: every chip's program
    must place its L1 arena at the same address (the compiler checks the offsets in it)."""
    addresses = {app.symbols.get("dl_arena") for app in apps}
    if len(addresses) != 1:
        raise CompileError(f"the chips' programs place dl_arena at different addresses: "
                           f"{sorted(hex(a or 0) for a in addresses)}")


def reference_cycles(work: Path, *, shape, seed, weights, max_cycles):
    """One chip's layer cycles with the weights in ``weights`` (``l2``: resident; ``l3``:
    streamed from off-chip): the same layer compiled for one chip and run on the one-chip
    harness (``make sim TEST=encoder_layer``'s flow), checked as it is."""
    sizes = {k: getattr(shape, k) for k in ("S", "E", "P", "H", "F")}
    run_dir = work / f"one_chip_{weights}"
    status, result, output, _breakdown, _prepared = run_layer(
        run_dir, model="minilm", seed=seed, sizes=sizes, weights=weights,
        max_cycles=max_cycles)
    if status != "PASS":
        mismatch = next((line for line in output.splitlines() if "mismatch" in line), "")
        raise RuntimeError(f"the one-chip reference run (weights in {weights}) failed: "
                           f"{mismatch or result.get('outcome')}")
    return int(result["layer_cycles"])


def run_encoder(*, chips, seed, link_stall=0, halt_chip=None, max_cycles, watchdog,
                S=None, E=None, H=None, F=None, references=True, corrupt=None, stream=True):
    """Build, run, check; returns (status, RESULT fields, the harness run)."""
    shape = encoder_shape(S, E, H, F)
    tag = f"S{shape.S}_E{shape.E}_H{shape.H}_F{shape.F}_seed{seed}"
    work = toolchain.BUILD_ROOT / "sw" / "multichip_encoder" / tag / f"k{chips}"
    images, programs, part = prepare_chips(work, shape=shape, chips=chips, seed=seed,
                                           corrupt=corrupt)
    elves = [work / f"chip{c}" / "encoder_layer.elf" for c in range(chips)]
    # One chip has nothing to send: only the cycle limit bounds it.
    watchdog = max_cycles if chips == 1 else watchdog
    run = run_chips(images, max_cycles=max_cycles, watchdog=watchdog, link_stall=link_stall,
                    seed=seed, halt_chip=halt_chip, stream=stream)
    per_chip = [parse(out, p.manifest) for out, p in zip(run.outputs, programs, strict=False)]
    stats = [stats_fields(out) for out in run.outputs]
    mismatch_lines = [f"chip {c}: {line}" for c, out in enumerate(run.outputs)
                      for line in out.splitlines() if line.startswith("mismatch:")]
    summary = run.summary
    fields: dict[str, object] = {"model": "encoder", "chips": chips}
    fields["mismatches"] = sum(_count_mismatches(out) for out in run.outputs)
    ok = (run.returncode == 0 and summary.get("end") == "exit" and len(run.chips) == chips
          and all(c.get("exit_code") == 0 for c in run.chips) and fields["mismatches"] == 0
          and all(f for _rows, f, _checks in per_chip))
    cycles = [f.get("layer_cycles", 0) for _rows, f, _checks in per_chip]
    if ok:
        fields["cycles"] = max(cycles)
        collective = [s.get("link_cycles", 0) for s in stats]
        tx = sum(s.get("link_tx_bytes", 0) for s in stats)
        rx = sum(s.get("link_rx_bytes", 0) for s in stats)
        if not tx == rx == summary.get("link_bytes"):
            fields["error"] = f"link_counters_tx{tx}_rx{rx}_carried{summary.get('link_bytes')}"
            ok = False
        fields["link_bytes"] = summary.get("link_bytes", 0)
        fields["allreduce_cycles"] = max(collective)
    if ok and references:
        base = reference_cycles(work.parent, shape=shape, seed=seed, weights="l3",
                                max_cycles=max_cycles)
        resident = reference_cycles(work.parent, shape=shape, seed=seed, weights="l2",
                                    max_cycles=max_cycles)
        fields["baseline_cycles"] = base
        fields["speedup"] = f"{base / fields['cycles']:.2f}"
        fields["efficiency"] = f"{resident / (chips * fields['cycles']):.2f}"
        fields["resident_cycles"] = resident
    if not ok and "error" not in fields:
        fields["error"] = "mismatch" if mismatch_lines else run.ending()
    fields["S"] = shape.S
    lines = [f"layer          S={shape.S} E={shape.E} P={shape.P} H={shape.H} F={shape.F} "
             f"(random weights, SEED={seed})",
             f"chips          {chips} on a ring, link {DEFAULT.link_bytes_per_cycle} B/cycle, "
             f"latency {DEFAULT.link_latency} cycles"
             + (f", stalls {link_stall} %" if link_stall else ""),
             "split          " + "; ".join(
                 f"chip {s.chip}: heads {s.heads[0]}-{s.heads[1] - 1}, "
                 f"f1 cols {s.f_cols[0]}-{s.f_cols[1] - 1}, f2 cols {s.e_cols[0]}-"
                 f"{s.e_cols[1] - 1}" for s in part.shares),
             "weights/chip   " + ", ".join(
                 f"{sum(size for _t, _d, size in s.weights(shape)):,} B" for s in part.shares)]
    if cycles and all(cycles):
        lines.append("cycles/chip    " + ", ".join(f"{c:,}" for c in cycles))
    if ok:
        lines.append(f"collectives    {fields['allreduce_cycles']:,} cycles (slowest chip), "
                     f"{fields['link_bytes']:,} B over the links "
                     f"({part.link_bytes():,} B sent per chip)")
    if "baseline_cycles" in fields:
        lines.append(f"one chip       {fields['baseline_cycles']:,} cycles with weights in L3 "
                     f"({DEFAULT.l3_bytes_per_cycle} B/cycle), {fields['resident_cycles']:,} "
                     f"resident in L2")
        lines.append(f"speedup        {fields['speedup']} x over L3, efficiency "
                     f"{fields['efficiency']} vs {chips} x one resident chip")
    lines += [f"check          {line}" for line in mismatch_lines[:8]]
    lines += [f"report         {line}" for line in _named_pcs(run.report, elves)
              if "never answered" in line or "watchdog:" in line or " at pc " in line]
    fields[SUMMARY_FIELD] = lines
    (work / "result.json").write_text(json.dumps(
        {k: v for k, v in fields.items() if k != SUMMARY_FIELD}, indent=1) + "\n")
    return ("PASS" if ok else "FAIL"), fields, run


_PC = re.compile(r"^multichip: chip (\d+) core \d+ at pc (0x[0-9a-f]{8})$")


def _named_pcs(report, elves):
    """The harness's lines with each core PC followed by the function of that chip's program
    holding it (core 0 waits for the links in one function per kind of exchange:
    ``wait_reduce_scatter``, ``wait_all_gather``, ``link_wait_pumping``)."""
    symbols = {}
    named = []
    for line in report:
        match = _PC.match(line)
        if match:
            chip = int(match.group(1))
            try:
                if chip not in symbols:
                    symbols[chip] = Symbols.from_elf(elves[chip])
                name = symbols[chip].name(int(match.group(2), 16))
            except (TraceError, OSError, IndexError, subprocess.CalledProcessError):
                name = ""
            if name and not name.startswith("0x"):
                line = f"{line} ({name})"
        named.append(line)
    return named


def _count_mismatches(output):
    """Differing bytes the chip's checks counted (``check: tensor=... mismatches=<n>``), or
    the mismatch lines when no count was printed."""
    total, lines = 0, 0
    for line in output.splitlines():
        if line.startswith("mismatch:"):
            lines += 1
        if line.startswith("check:"):
            for word in line.split():
                key, _, value = word.partition("=")
                if key == "mismatches" and value.isdigit():
                    total += int(value)
    return max(total, lines)
