"""K chips in one process: the multi-chip harness (``verif/harness/multichip_main.cpp``).

The harness main is compiled against the model library of :func:`verif.harness.run.build_harness`
(the same Verilator build as ``make run``: one build per configuration, whatever the number of
chips) and linked beside it in ``build/harness/<model digest>-multichip-<digest>/``. The link
parameters it needs come from :class:`ita.cluster_config.ClusterConfig` through a generated
``link_config.h`` (:func:`link_config_header`). :func:`run_chips` runs K chips with their own
L2 images and parses the harness's report.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cluster_integration.link import TX_DEPTH
from hw import toolchain
from ita.cluster_config import DEFAULT, LINKS, ClusterConfig
from verif.harness.run import EXECUTABLE, HARNESS_DIR, build_harness, run_model

__all__ = ["MAIN_CPP", "MultichipBuild", "MultichipRun", "link_config_header", "build_multichip",
           "run_chips", "parse_report", "MAX_CHIPS"]

MAIN_CPP = HARNESS_DIR / "multichip_main.cpp"
SUMMARY = "multichip: summary "
EXECUTABLE_NAME = "Vmultichip"
#: The harness's own limit on K (kMaxChips).
MAX_CHIPS = 64


def link_config_header(cluster: ClusterConfig = DEFAULT) -> str:
    """``link_config.h``: the link numbers the harness needs, from ``cluster``."""
    beat = cluster.dma_width // 8
    # Room for every beat in flight at the link's rate, plus the sender's own buffer.
    capacity = -(-cluster.link_latency * cluster.link_bytes_per_cycle // beat) + TX_DEPTH
    return "\n".join([
        f"// Generated from ClusterConfig {cluster.name!r} by verif/harness/multichip.py; do not "
        "edit.",
        "#pragma once",
        f"#define LINK_COUNT {len(LINKS)}",
        f"#define LINK_LATENCY {cluster.link_latency}",
        f"#define LINK_BEAT_BYTES {beat}",
        f"#define LINK_CAPACITY {capacity}",
        ""])


@dataclass(frozen=True)
class MultichipBuild:
    build_dir: Path
    model_dir: Path
    rebuilt: bool
    seconds: float
    profile: str

    @property
    def executable(self) -> Path:
        return self.build_dir / EXECUTABLE_NAME


def _model_commands(model_dir: Path) -> tuple[list[str], list[str]]:
    """The compile command of the model's harness main and its link command, from the
    model's build log (the flags Verilator's makefile used)."""
    compile_cmd = link_cmd = None
    for line in (model_dir / "build.log").read_text(errors="replace").splitlines():
        if "cluster_main" not in line:
            continue
        try:
            words = shlex.split(line)
        except ValueError:   # not a command line (a quoted message)
            continue
        if "-c" in words and words[-1].endswith("cluster_main.cpp"):
            compile_cmd = words
        elif words and "-o" in words and words[words.index("-o") + 1] == EXECUTABLE \
                and "cluster_main.o" in words:
            link_cmd = words
    if compile_cmd is None or link_cmd is None:
        raise toolchain.BuildFailed(f"{model_dir / 'build.log'}: no compile and link command "
                                    "of the harness main to follow")
    return compile_cmd, link_cmd


def build_multichip(profile: str | None = None,
                    cluster: ClusterConfig = DEFAULT) -> MultichipBuild:
    """The multi-chip harness beside the model of ``build_harness(profile)`` (built first if
    needed); cached by the model's digest, the main's source and the generated header."""
    t0 = time.monotonic()
    model = build_harness(profile)
    header = link_config_header(cluster)
    digest = hashlib.sha256(MAIN_CPP.read_bytes() + b"\0" + header.encode()).hexdigest()[:10]
    out = model.build_dir.parent / f"{model.digest}-multichip-{digest}"
    stamp = out / ".built"
    rebuilt = False
    with toolchain.file_lock(out / ".lock"):
        if not (stamp.is_file() and (out / EXECUTABLE_NAME).is_file()):
            toolchain.say(f"building the multi-chip harness in {toolchain.relative(out)} ...",
                          "multichip")
            (out / "link_config.h").write_text(header)
            compile_cmd, link_cmd = _model_commands(model.build_dir)
            obj = out / "multichip_main.o"
            compile_cmd = [*compile_cmd[:-4], f"-I{model.build_dir}", f"-I{out}",
                           *compile_cmd[-4:-2], str(obj), str(MAIN_CPP)]
            objects = [w if w.startswith("-") or os.path.isabs(w) else str(model.build_dir / w)
                       for w in link_cmd[1:]]
            objects = [str(obj) if Path(w).name == "cluster_main.o" else w for w in objects]
            output = objects.index("-o") + 1
            objects[output] = str(out / EXECUTABLE_NAME)
            log = out / "build.log"
            with open(log, "w") as fh:
                for cmd in (compile_cmd, [link_cmd[0], *objects]):
                    fh.write(" ".join(cmd) + "\n")
                    fh.flush()
                    proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                          cwd=model.build_dir,
                                          env=toolchain.verilator_env())
                    if proc.returncode:
                        tail = log.read_text(errors="replace").splitlines()[-30:]
                        raise toolchain.BuildFailed("\n".join(
                            [f"multi-chip harness build failed; {log}:", *tail]))
            stamp.write_text("built\n")
            rebuilt = True
    return MultichipBuild(out, model.build_dir, rebuilt, time.monotonic() - t0, model.profile)


@dataclass(frozen=True)
class MultichipRun:
    """One run: the harness's summary, per-chip ends and outputs, per-link counts."""

    returncode: int
    summary: dict
    chips: list[dict]
    links: list[dict]
    outputs: list[str]  # each chip's output, its "[chip i] " prefix removed
    report: list[str]   # the harness's own lines
    build: MultichipBuild

    def ending(self) -> str:
        """How a failed run ended, as a RESULT word: a silent chip, the first chip that
        failed, or the harness's end."""
        end = self.summary.get("end", f"harness_exit_{self.returncode}")
        if "silent_chip" in self.summary:
            return f"{end}_chip_{self.summary['silent_chip']}_never_answered"
        if "failed_chip" in self.summary:
            chip = self.chips[self.summary["failed_chip"]]
            return f"chip_{chip['chip']}_{chip['end']}_{chip.get('exit_code', '')}".rstrip("_")
        return str(end)


def _fields(text: str) -> dict:
    out: dict[str, object] = {}
    for word in text.split():
        key, _, value = word.partition("=")
        try:
            out[key] = int(value, 0)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def parse_report(lines: Sequence[str], chips: int) -> tuple[dict, list[dict], list[dict],
                                                            list[str], list[str]]:
    """(summary, chip lines, link lines, outputs per chip, harness lines) of a run's output."""
    summary: dict = {}
    per_chip: list[dict] = []
    links: list[dict] = []
    outputs = [""] * chips
    report = []
    for line in lines:
        if line.startswith(SUMMARY):
            summary = _fields(line[len(SUMMARY):])
        elif line.startswith("multichip: chip=") and " end=" in line:
            per_chip.append(_fields(line[len("multichip: "):]))
        elif line.startswith("multichip: link="):
            links.append(_fields(line[len("multichip: "):]))
        elif line.startswith("[chip "):
            head, _, rest = line.partition("] ")
            index = int(head[len("[chip "):])
            if 0 <= index < chips:
                outputs[index] += rest if rest.endswith("\n") else rest + "\n"
        if line.startswith("multichip: "):
            report.append(line.rstrip("\n"))
    return summary, per_chip, links, outputs, report


def run_chips(images: Sequence[str | os.PathLike], *, max_cycles: int, watchdog: int,
              link_stall: int = 0, seed: int = 1, halt_chip: int | None = None,
              stream: bool = True, profile: str | None = None) -> MultichipRun:
    """Run ``len(images)`` chips, chip i loading the ``$readmemh`` L2 file ``images[i]``."""
    chips = len(images)
    if not 1 <= chips <= MAX_CHIPS:
        raise ValueError(f"CHIPS must be 1..{MAX_CHIPS}, not {chips}")
    build = build_multichip(profile)
    cmd = [str(build.executable), f"+CHIPS={chips}", f"+MAX_CYCLES={max_cycles}",
           f"+WATCHDOG={watchdog}", f"+LINK_STALL={link_stall}", f"+SEED={seed}"]
    if len({str(i) for i in images}) == 1:
        cmd.append(f"+L2_HEX={images[0]}")
    else:
        cmd += [f"+L2_HEX_{i}={image}" for i, image in enumerate(images)]
    if halt_chip is not None:
        cmd.append(f"+HALT_CHIP={halt_chip}")
    returncode, lines, _ = run_model(cmd, stream=stream, summary=SUMMARY, parse=lambda _: {})
    summary, per_chip, links, outputs, report = parse_report(lines, chips)
    return MultichipRun(returncode, summary, per_chip, links, outputs, report, build)
