"""What ``make bench`` runs: the plan (which points, which sizes) and one function per section.

Every cycle count comes from a RESULT line of an existing flow: ``make sim`` tests run as
``python -m verif.sim`` subprocesses, the fast C++ harnesses through their own modules
(``verif.harness.run``, ``verif.harness.engine``), the DMA sweep and the L1 arbitration
figures through ``python -m bench.dma_rate``. Nothing here simulates by itself.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import model
from bench.cluster_image import run_gemm_image
from bench.runner import (
    Measurement,
    SimPoint,
    children_cpu_seconds,
    cocotb_times,
    run_argv,
    run_point,
    strip_stdout,
)
from hw.toolchain import SIM_PROFILES
from ita.config import ITAConfig
from ita.golden.encoder import SHAPES
from verif.harness import engine as engine_harness
from verif.harness import run as cluster_harness
from verif.sim import load_tests

__all__ = ["Plan", "FULL", "QUICK", "SECTIONS", "Bench", "CLOCK_PERIOD_NS", "block_cycles",
           "eval_line_result"]

#: Clock period of every cocotb testbench (simulated ns per cycle).
CLOCK_PERIOD_NS = 10

#: The real-model section's longest sentence (32 tokens with [CLS] and [SEP]).
MINILM_LONG_TEXT = ("After three long weeks of heavy rain the farmers finally harvested their "
                    "wheat, and the whole village gathered in the old square to celebrate with "
                    "music and dancing.")
#: The accuracy flow of the real-model section: the integer model against the float model on
#: the repository's held sentences and pairs (no RTL).
MINILM_ACCURACY_COMMAND = "python -m ita.quant.minilm"
#: The decoder section's quality flow: the integer SmolLM2 against its float model on the
#: repository's held paragraphs (no RTL); it prints an EVAL line.
DECODER_QUALITY_COMMAND = "python -m ita.quant.llama"


@dataclass(frozen=True)
class Plan:
    """Sizes of every sweep; ``FULL`` is ``make bench``, ``QUICK`` the tests' tiny version."""

    seed: int = 1
    repeats: int = 3
    attention_diag: tuple = (32, 64, 96, 128, 192, 256)
    attention_base: int = 64  # the two fixed dimensions of the one-dimension sweeps
    attention_sweep: tuple = (32, 128, 256, 512)
    ffn_base: int = 128
    ffn_f: tuple = (64, 128, 256, 512)
    ffn_diag: tuple = (64, 128, 256)
    hwpe_attention: tuple = ((64, 64, 64, 1), (128, 128, 128, 1), (256, 256, 256, 1),
                             (64, 64, 64, 2))  # S, E, P, H
    hwpe_ffn: tuple = (128,)  # S = E = F
    cluster: tuple = ((64, 64, 64, 1), (64, 64, 64, 2), (128, 128, 128, 1))  # S, E, P, H
    gemm: tuple = ((16, 16, 16), (32, 32, 32), (64, 64, 64), (128, 128, 128))
    kernels: tuple = (("SIZE", "large"),)
    encoder_models: tuple = ("mobilebert", "minilm")
    # Sentences of the whole all-MiniLM-L6-v2 on the cluster (5, 15 and 32 tokens), and
    # whether the accuracy flow runs on the held sentences.
    minilm_texts: tuple = ("Thank you!",
                           "The cat sat quietly on the windowsill, watching the rain.",
                           MINILM_LONG_TEXT)
    minilm_accuracy: bool = True
    # SmolLM2 on the cluster (``make sim TEST=generate``): prompts of 1, 2 and 4 tokens through
    # the first ``decoder_layers`` real layers, ``decoder_tokens`` decoding steps each, and
    # whether the quality flow runs.
    decoder_prompts: tuple = ("Once", "Once upon", "Once upon a time")
    decoder_layers: int = 1
    decoder_tokens: int = 1
    decoder_quality: bool = True
    # A MiniLM-shaped encoder layer split over chips (``make sim TEST=multichip
    # MODEL=encoder``): the chip counts and the tokens.
    multichip_chips: tuple = (1, 2, 4)
    multichip_tokens: int = 64
    speed_engine: int = 256  # attention S = E = P of the engine speed runs
    speed_gemm: tuple = (128, 128, 128)
    dma_widths: tuple = (32, 64, 128, 256)  # bits per DMA beat
    dma_sizes: tuple = (256, 1024, 4096, 16384, 65536)  # bytes of a 1-D L2 -> L1 copy
    dma_rows: tuple = ((64, 256),)  # (row bytes, rows) of the 2-D copies
    arbitration_cycles: int = 2000  # 0: no arbitration runs (nor the cluster's dma program)
    arbitration_activity: float = 0.3  # chance per cycle that a core issues an L1 access


FULL = Plan()
QUICK = Plan(repeats=1, attention_diag=(32, 64), attention_sweep=(), ffn_f=(), ffn_diag=(64,),
             hwpe_attention=((64, 64, 64, 1),), hwpe_ffn=(), cluster=((64, 64, 64, 1),),
             gemm=((16, 16, 16),), kernels=(("SIZE", "small"),), encoder_models=("tiny",),
             speed_engine=64, speed_gemm=(32, 32, 32), dma_widths=(), arbitration_cycles=0,
             minilm_texts=(), minilm_accuracy=False, decoder_prompts=(),
             decoder_quality=False, multichip_chips=())

SECTIONS = ("engine", "hwpe", "cluster", "kernels", "dma", "encoder", "minilm", "decoder",
            "multichip", "speed")
#: The two L1 arbitrations ``bench.dma_rate MODE=arbitration`` compares.
ARBITRATION_CASES = ("before", "after")


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


@dataclass
class Bench:
    """Runs the sections of a plan, keeps every measurement, prints progress to stderr."""

    plan: Plan
    sections: tuple = SECTIONS
    out: Path = Path("build/bench")
    log: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr,
                                                                  flush=True))
    results: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    step: int = 0
    total: int = 0
    t0: float = field(default_factory=time.monotonic)

    # --- progress ---------------------------------------------------------------------------

    def _begin(self, what: str) -> None:
        self.step += 1
        elapsed = time.monotonic() - self.t0
        self.log(f"[{self.step}/{self.total}] {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}"
                 f"  {what}")

    def _end(self, m: Measurement) -> None:
        r = m.result
        what = " ".join(f"{k}={r[k]}" for k in ("cycles", "utilization") if k in r)
        self.log(f"        {m.status} {what} ({m.wall_s:.1f} s, CPU {m.cpu_s:.1f} s)")
        if m.status != "PASS":
            self.failures.append({"command": m.command, "log_tail": m.log_tail})
            self.log("        " + m.log_tail.replace("\n", "\n        "))

    def sim_output(self, point: SimPoint, env: dict | None = None) -> tuple[Measurement, str]:
        """Run one ``make sim`` point as a numbered step: its measurement and its stdout
        (which stays out of results.json)."""
        self._begin(point.command if not env else
                    " ".join([*(f"{k}={v}" for k, v in env.items()), point.command]))
        m = run_point(point, env=env)
        stdout = strip_stdout(m)
        self._end(m)
        return m, stdout

    def sim(self, point: SimPoint, env: dict | None = None) -> Measurement:
        return self.sim_output(point, env)[0]

    # --- the plan -----------------------------------------------------------------------------

    def attention_points(self) -> list[tuple[str, dict]]:
        p = self.plan
        points = [("diagonal", {"S": n, "E": n, "P": n}) for n in p.attention_diag]
        b = p.attention_base
        for dim in "SEP":
            for n in p.attention_sweep:
                keys = {"S": b, "E": b, "P": b}
                keys[dim] = n
                points.append((dim, keys))
        # the engine part of every HWPE and cluster configuration, for their breakdown
        for S, E, P, H in (*p.hwpe_attention, *p.cluster):
            keys = {"S": S, "E": E, "P": P} if H == 1 else {"S": S, "E": E, "P": P, "H": H}
            if all(k != keys for _sweep, k in points):
                points.append(("heads" if H > 1 else "extra", keys))
        return points

    def ffn_points(self) -> list[tuple[str, dict]]:
        p = self.plan
        points = [("diagonal", {"S": n, "E": n, "F": n}) for n in p.ffn_diag]
        points += [("F", {"S": p.ffn_base, "E": p.ffn_base, "F": f}) for f in p.ffn_f]
        return points

    def count_steps(self, registry: set[str]) -> int:
        p, n = self.plan, 0
        if "engine" in self.sections:
            n += len(self.attention_points()) + len(self.ffn_points())
        if "hwpe" in self.sections:
            n += len(p.hwpe_attention) + len(p.hwpe_ffn)
        if "cluster" in self.sections:
            n += len(p.cluster)
        if "kernels" in self.sections:
            n += len(p.gemm) + ("kernels" in registry)
        if "dma" in self.sections:
            n += len(p.dma_widths) * (len(p.dma_sizes) + len(p.dma_rows))
            if p.arbitration_cycles:
                n += len(ARBITRATION_CASES) + ("dma" in registry)
        if "encoder" in self.sections and "encoder_layer" in registry:
            n += len(p.encoder_models)
        if "minilm" in self.sections:
            n += len(p.minilm_texts) * ("minilm" in registry) + p.minilm_accuracy
        if "decoder" in self.sections:
            n += len(p.decoder_prompts) * ("generate" in registry) + p.decoder_quality
        if "multichip" in self.sections and "multichip" in registry:
            n += len(p.multichip_chips)
        if "speed" in self.sections:
            n += 2 + 4 * p.repeats  # two C++ model builds, four flows
            n += 3 * len(SIM_PROFILES)  # per profile: a C++ build, a C++ run, a cocotb run
        return n

    # --- sections -----------------------------------------------------------------------------

    def run(self) -> dict:

        registry = set(load_tests())
        self.total = self.count_steps(registry)
        self.results = {"engine": [], "hwpe": [], "cluster": [], "gemm": [], "kernels": None,
                        "dma": {"copies": [], "arbitration": [], "cluster": None},
                        "encoder": [], "minilm": {"runs": [], "accuracy": None},
                        "decoder": {"runs": [], "quality": None}, "multichip": [],
                        "speed": {}}
        for section in self.sections:
            getattr(self, f"section_{section}")(registry)
        return self.results

    def _engine_point(self, test: str, sweep: str, keys: dict) -> dict:
        p = self.plan
        point = SimPoint(test, {**keys, "STALLS": 0, "SEED": p.seed})
        m = self.sim(point)
        mode = "attention" if test == "ita_attention" else "ffn"
        row = {"mode": mode, "sweep": sweep, **keys, **m.to_json()}
        r = m.result
        if m.status == "PASS":
            dims = {k: keys.get(k, 0) for k in "SEPF"}
            heads = keys.get("H", 1)  # one job per head in the reference
            row["port_bound_cycles"] = heads * model.port_bound_cycles(mode, **dims)
            row["port_bound_utilization"] = round(
                model.port_bound_utilization(mode, r["ideal_cycles"] / heads, **dims), 2)
        return row

    def section_engine(self, registry) -> None:
        for sweep, keys in self.attention_points():
            self.results["engine"].append(self._engine_point("ita_attention", sweep, keys))
        for sweep, keys in self.ffn_points():
            self.results["engine"].append(self._engine_point("ita_ffn", sweep, keys))

    def section_hwpe(self, registry) -> None:
        p = self.plan
        shapes = [("attention", {"S": S, "E": E, "P": P, "H": H})
                  for S, E, P, H in p.hwpe_attention]
        shapes += [("ffn", {"S": n, "E": n, "F": n}) for n in p.hwpe_ffn]
        for mode, keys in shapes:
            m = self.sim(SimPoint("ita_hwpe", {"MODE": mode, **keys, "STALLS": 0,
                                               "SEED": p.seed}))
            self.results["hwpe"].append({"mode": mode, **keys, **m.to_json()})

    def section_cluster(self, registry) -> None:
        p = self.plan
        for S, E, P, H in p.cluster:
            m = self.sim(SimPoint("attention_head", {"S": S, "E": E, "P": P, "H": H,
                                                     "SEED": p.seed}))
            self.results["cluster"].append({"S": S, "E": E, "P": P, "H": H, **m.to_json()})

    def section_kernels(self, registry) -> None:
        p = self.plan
        for M, K, N in p.gemm:
            m = self.sim(SimPoint("gemm", {"M": M, "K": K, "N": N, "SEED": p.seed}))
            self.results["gemm"].append({"M": M, "K": K, "N": N, **m.to_json()})
        if "kernels" not in registry:
            self.notes.append("kernels: `make sim TEST=kernels` is not registered in this tree; "
                              "the per-element cycles of the encoder kernels are left out.")
            return
        point = SimPoint("kernels", {**dict(p.kernels), "SEED": p.seed})
        m, stdout = self.sim_output(point)
        self.results["kernels"] = {**m.to_json(), "lines": _program_lines(stdout)}

    def _dma_rate(self, words: list[str]) -> Measurement:
        command = "python -m bench.dma_rate " + " ".join(words)
        self._begin(command)
        m = run_argv([sys.executable, "-m", "bench.dma_rate", *words], command)
        strip_stdout(m)
        self._end(m)
        return m

    def section_dma(self, registry) -> None:
        """Bytes per cycle of L2 -> L1 copies by beat width and size (1-D, and 2-D of short
        rows), the ITA's slowdown beside a transfer and the cores under the old and the new
        L1 arbitration, and the whole cluster's ``make sim TEST=dma``. Also writes the
        tables to ``dma.md`` in the output directory."""
        p, dma = self.plan, self.results["dma"]
        for width in p.dma_widths:
            shapes = [(size, 1) for size in p.dma_sizes] + list(p.dma_rows)
            for length, rows in shapes:
                m = self._dma_rate(["MODE=copy", f"WIDTH={width}", f"BYTES={length}",
                                    f"ROWS={rows}"])
                dma["copies"].append({"width": width, "row_bytes": length, "rows": rows,
                                      "bytes": length * rows, **m.to_json()})
        if p.arbitration_cycles:
            for case in ARBITRATION_CASES:
                m = self._dma_rate(["MODE=arbitration", f"CASE={case}",
                                    f"CYCLES={p.arbitration_cycles}",
                                    f"ACTIVITY={p.arbitration_activity}", f"SEED={p.seed}"])
                dma["arbitration"].append({"case": case, **m.to_json()})
            if "dma" in registry:
                m = self.sim(SimPoint("dma", {"SEED": p.seed}))
                dma["cluster"] = m.to_json()
        if not dma["copies"] and not dma["arbitration"]:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "dma.md").write_text("\n".join(dma_tables(dma, p)) + "\n")

    def section_encoder(self, registry) -> None:
        if "encoder_layer" not in registry:
            self.notes.append("encoder: `make sim TEST=encoder_layer` is not registered in this "
                              "tree; the encoder-layer breakdown is left out.")
            return
        for name in self.plan.encoder_models:
            point = SimPoint("encoder_layer", {"MODEL": name, "SEED": self.plan.seed})
            m, stdout = self.sim_output(point)
            row = {"model": name, **m.to_json(), "lines": _program_lines(stdout)}
            shape = _encoder_shape(name)
            if shape is not None:
                row["shape"] = shape
                row["matmul_ops"] = model.encoder_ops(**shape)
            self.results["encoder"].append(row)

    def section_minilm(self, registry) -> None:
        """The whole all-MiniLM-L6-v2 on the cluster at each sentence of the plan (cycles,
        and each block's cycles from the program's own counters), and the accuracy flow."""
        p, out = self.plan, self.results["minilm"]
        if p.minilm_texts and "minilm" not in registry:
            self.notes.append("minilm: `make sim TEST=minilm` is not registered in this tree; "
                              "the real model's cycles are left out.")
        elif p.minilm_texts:
            for text in p.minilm_texts:
                point = SimPoint("minilm", {"TEXT": text})
                m, stdout = self.sim_output(point)
                out["runs"].append({"text": text, **m.to_json(),
                                    "blocks": block_cycles(m.result),
                                    "lines": _program_lines(stdout)})
        if p.minilm_accuracy:
            self._begin(MINILM_ACCURACY_COMMAND)
            m = run_argv([sys.executable, "-m", "ita.quant.minilm"], MINILM_ACCURACY_COMMAND)
            strip_stdout(m)
            self._end(m)
            out["accuracy"] = m.to_json()

    def section_decoder(self, registry) -> None:
        """SmolLM2's prefill and decoding steps on the cluster at each prompt of the plan
        (real weights from L3, every step checked), and the quality flow."""
        p, out = self.plan, self.results["decoder"]
        if p.decoder_prompts and "generate" not in registry:
            self.notes.append("decoder: `make sim TEST=generate` is not registered in this "
                              "tree; the decoder's cycles are left out.")
        elif p.decoder_prompts:
            for prompt in p.decoder_prompts:
                point = SimPoint("generate", {"PROMPT": prompt, "TOKENS": p.decoder_tokens,
                                              "LAYERS": p.decoder_layers})
                m = self.sim(point)
                out["runs"].append({"prompt": prompt, **m.to_json()})
        if p.decoder_quality:
            self._begin(DECODER_QUALITY_COMMAND)
            m = run_argv([sys.executable, "-m", "ita.quant.llama"], DECODER_QUALITY_COMMAND)
            eval_line_result(m, strip_stdout(m))
            self._end(m)
            out["quality"] = m.to_json()

    def section_multichip(self, registry) -> None:
        """The encoder layer over 1, 2, 4 chips: cycles, the one-chip baselines, speedup,
        efficiency, link bytes and the time in the collectives, from each run's RESULT."""
        p = self.plan
        if p.multichip_chips and "multichip" not in registry:
            self.notes.append("multichip: `make sim TEST=multichip` is not registered in this "
                              "tree; the scaling runs are left out.")
            return
        for chips in p.multichip_chips:
            point = SimPoint("multichip", {"MODEL": "encoder", "CHIPS": chips,
                                           "S": p.multichip_tokens, "SEED": p.seed})
            m = self.sim(point)
            self.results["multichip"].append({"chips": chips, **m.to_json()})

    # --- simulator speed ------------------------------------------------------------------------

    def section_speed(self, registry) -> None:
        speed = self.results["speed"]
        speed["engine"] = self._speed_engine()
        speed["cluster"] = self._speed_cluster()
        speed["profiles"] = self._speed_profiles()

    def _timed_build(self, what: str, build: Callable[[], object]) -> dict:
        self._begin(f"build (or reuse) {what}")
        cpu0, t0 = children_cpu_seconds() + time.process_time(), time.monotonic()
        try:
            handle = build()
        except Exception as exc:  # a failed build is reported, the other sections go on
            self.failures.append({"command": f"build {what}", "log_tail": str(exc)})
            self.log(f"        FAIL {str(exc).splitlines()[0]}")
            return {"status": "FAIL", "error": str(exc).splitlines()[0]}
        wall = time.monotonic() - t0
        cpu = children_cpu_seconds() + time.process_time() - cpu0
        rebuilt = bool(getattr(handle, "rebuilt", False))
        self.log(f"        {'built' if rebuilt else 'cached'} ({wall:.1f} s, CPU {cpu:.1f} s)")
        return {"status": "PASS", "rebuilt": rebuilt, "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2)}

    def _speed_engine(self) -> dict:

        p, n = self.plan, self.plan.speed_engine
        keys = {"S": n, "E": n, "P": n}
        out = {"config": {"mode": "attention", **keys, "seed": p.seed, "stalls": 0},
               "cocotb": [], "cpp": []}
        point = SimPoint("ita_attention", {**keys, "STALLS": 0, "SEED": p.seed})
        out["cocotb_command"] = point.command
        for _ in range(p.repeats):
            since = time.time()
            m = self.sim(point)
            row = m.to_json()
            times = cocotb_times(f"ita_attention-seed{p.seed}", since)
            if times and m.status == "PASS":
                row["sim_real_s"], sim_ns = times
                row["sim_cycles"] = round(sim_ns / CLOCK_PERIOD_NS)
            out["cocotb"].append(row)
        out["cpp_build"] = self._timed_build(
            "the C++ engine model", lambda: engine_harness.build_engine_harness(ITAConfig()))
        argv = [sys.executable, "-m", "verif.harness.engine", "MODE=attention",
                *(f"{k}={v}" for k, v in keys.items()), f"SEED={p.seed}"]
        out["cpp_command"] = "python -m verif.harness.engine " + " ".join(argv[3:])
        for _ in range(p.repeats):
            self._begin(out["cpp_command"])
            m = run_argv(argv, out["cpp_command"])
            strip_stdout(m)
            self._end(m)
            out["cpp"].append(m.to_json())
        return _summarise_speed(out, cycles_key="cycles")

    def _speed_cluster(self) -> dict:

        p = self.plan
        M, K, N = p.speed_gemm
        keys = {"M": M, "K": K, "N": N, "SEED": p.seed}
        point = SimPoint("gemm", keys)
        out = {"config": {"program": "gemm", "M": M, "K": K, "N": N, "seed": p.seed},
               "cocotb": [], "cpp": [], "cocotb_command": point.command}
        run_name = f"gemm-M{M}_K{K}_N{N}_seed{p.seed}"
        for _ in range(p.repeats):
            since = time.time()
            m = self.sim(point)
            row = m.to_json()
            times = cocotb_times(run_name, since)
            if times and m.status == "PASS":
                row["sim_real_s"], sim_ns = times
                row["sim_cycles"] = round(sim_ns / CLOCK_PERIOD_NS)
            out["cocotb"].append(row)
        out["cpp_build"] = self._timed_build("the C++ cluster model",
                                             cluster_harness.build_harness)
        out["cpp_command"] = (f"python -m bench.cluster_image M={M} K={K} N={N} "
                              f"SEED={p.seed}  (the gemm image and its data on the C++ harness)")
        if out["cpp_build"]["status"] == "PASS":
            for _ in range(p.repeats):
                self._begin(f"gemm M={M} K={K} N={N} on the C++ cluster harness")
                m = run_gemm_image(M=M, K=K, N=N, seed=p.seed)
                self._end(m)
                out["cpp"].append(m.to_json())
        return _summarise_speed(out, cycles_key="total_cycles")


    def _speed_profiles(self) -> list[dict]:
        """The cluster gemm of the speed section once per ``SIM_PROFILE`` (each adds one
        change to the one before): the effect of every change, measured in this run."""

        p = self.plan
        M, K, N = p.speed_gemm
        point = SimPoint("gemm", {"M": M, "K": K, "N": N, "SEED": p.seed})
        run_name = f"gemm-M{M}_K{K}_N{N}_seed{p.seed}"
        rows = []
        for name, profile in SIM_PROFILES.items():
            row = {"profile": name, "about": profile.about,
                   "cocotb_command": f"SIM_PROFILE={name} {point.command}",
                   "cpp_command": f"python -m bench.cluster_image M={M} K={K} N={N} "
                                  f"SEED={p.seed} SIM_PROFILE={name}"}
            since = time.time()
            m = self.sim(point, env={"SIM_PROFILE": name})
            row["cocotb"] = m.to_json()
            times = cocotb_times(run_name, since)
            if times and m.status == "PASS":
                row["cocotb"]["sim_real_s"], sim_ns = times
                row["cocotb"]["loop_cycles_per_s"] = round(sim_ns / CLOCK_PERIOD_NS / times[0])
            row["cpp_build"] = self._timed_build(
                f"the C++ cluster model ({name})",
                lambda name=name: cluster_harness.build_harness(name))
            if row["cpp_build"]["status"] == "PASS":
                self._begin(row["cpp_command"])
                m = run_gemm_image(M=M, K=K, N=N, seed=p.seed, profile=name)
                self._end(m)
                row["cpp"] = m.to_json()
                row["cpp_build"]["digest"] = cluster_harness.build_harness(name).digest
            rows.append(row)
        return rows


def _summarise_speed(out: dict, *, cycles_key: str) -> dict:
    """Medians of the repeated runs; simulated cycles per second of each flow.

    cocotb: ``loop`` = cycles simulated inside the cocotb test / its real time (JUnit);
    C++: ``loop`` = the harness's own measurement of its simulation loop. ``end_to_end`` =
    RESULT cycles / wall (or CPU) time of the whole command.
    """
    summary = {}
    for flow in ("cocotb", "cpp"):
        rows = [r for r in out[flow] if r["status"] == "PASS"]
        if not rows:
            summary[flow] = None
            continue
        res = rows[0]["result"]
        cycles = res.get(cycles_key) if flow == "cocotb" else res.get("cycles")
        if flow == "cocotb":
            loop = [r["sim_cycles"] / r["sim_real_s"] for r in rows
                    if r.get("sim_real_s")]
            loop_cpu = []
        else:
            loop = [r["result"].get("sim_cycles_per_s") for r in rows]
            loop_cpu = [r["result"].get("cpu_cycles_per_s") for r in rows]
        summary[flow] = {
            "runs": len(rows), "cycles": cycles,
            "loop_cycles_per_s": _median(loop),
            "loop_cpu_cycles_per_s": _median(loop_cpu),
            "wall_s": _median([r["wall_s"] for r in rows]),
            "cpu_s": _median([r["cpu_s"] for r in rows]),
            "end_to_end_cycles_per_s": _median([cycles / r["wall_s"] for r in rows]),
            "end_to_end_cpu_cycles_per_s": _median([cycles / r["cpu_s"] for r in rows
                                                    if r["cpu_s"] > 0]),
        }
    if summary.get("cocotb") and summary.get("cpp"):
        summary["cycles_agree"] = summary["cocotb"]["cycles"] == summary["cpp"]["cycles"]
    out["summary"] = summary
    return out


def dma_tables(dma: dict, plan: Plan) -> list[str]:
    """Markdown: one row per DMA width (bytes per cycle by copy), then the arbitration."""
    shapes = [(size, 1) for size in plan.dma_sizes] + list(plan.dma_rows)
    header = ["width (bits)", *(f"{n} B" if rows == 1 else f"{rows} x {n} B (2-D)"
                                for n, rows in shapes)]
    lines = ["## DMA: L2 -> L1 bytes per cycle", "",
             "`python -m bench.dma_rate MODE=copy WIDTH=<w> BYTES=<n> ROWS=<r>` (START grant to "
             "event, memories granting every beat).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for width in plan.dma_widths:
        cells = [str(width)]
        for length, rows in shapes:
            row = next((r for r in dma["copies"] if (r["width"], r["row_bytes"], r["rows"])
                        == (width, length, rows)), None)
            rate = row and row["result"].get("bytes_per_cycle")
            cells.append("-" if rate is None else f"{rate:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## L1 arbitration: the HWPE beside a DMA transfer and the cores", "",
              "| case | HWPE slowdown | DMA B/cycle | longest refusal wide / DMA / core "
              "| bound wide / DMA / core |", "|---|---|---|---|---|"]
    for row in dma["arbitration"]:
        r = row["result"]
        if not r:
            continue
        lines.append(f"| {row['case']} | {r['wide_slowdown_pct']} % "
                     f"| {r['dma_bytes_per_cycle']} "
                     f"| {r['max_refusals_wide']} / {r['max_refusals_dma']} / "
                     f"{r['max_refusals_core']} | {r['bound_wide']} / {r['bound_dma']} / "
                     f"{r['bound_core']} |")
    cluster = dma.get("cluster")
    if cluster and cluster.get("result"):
        r = cluster["result"]
        words = " ".join(f"{k}={r[k]}" for k in ("l2_l1_1d", "l2_l1_2d", "l1_l2_1d",
                                                 "l1_l2_2d", "all_cores") if k in r)
        lines += ["", f"The whole cluster, `{cluster['command']}`: {words} (bytes per cycle, "
                  "the program's timing around dma_wait())."]
    return lines


def eval_line_result(m: Measurement, stdout: str) -> None:
    """Fill ``m`` from the ``EVAL`` line a quality flow prints instead of a RESULT line: its
    ``key=value`` fields, PASS when the command exited 0 with one."""
    line = next((t for t in reversed(stdout.splitlines()) if t.startswith("EVAL ")), None)
    if line is None:
        return
    m.result = {k: v for k, _, v in (w.partition("=") for w in line.split()[1:])}
    if m.returncode == 0:
        m.status, m.log_tail = "PASS", ""


def block_cycles(result: dict) -> list[int]:
    """Cycles of each block of a ``make sim TEST=minilm`` run from its ``block_cycles``
    field (the program's counter at each block's end; block 0 includes the embedding
    LayerNorm, the last the pooling); empty when the run has none."""
    text = str(result.get("block_cycles") or "")
    try:
        return [int(v) for v in text.split(",")] if text else []
    except ValueError:
        return []


def _program_lines(stdout: str) -> list[str]:
    """The program's own report lines: no simulator log, no harness lines, no RESULT, and no
    ``stats:`` or ``kernels:`` lines (machine-readable repeats of its table)."""
    keep = []
    for line in stdout.splitlines():
        text = line.strip()
        if not text or text.startswith(("RESULT ", "cluster_main:", "engine_main:", "stats:",
                                        "kernels: ")):
            continue
        if " INFO " in text or " WARNING " in text or text.startswith(("-.--ns", "**")):
            continue
        keep.append(text)
    return keep[-60:]


def _encoder_shape(name: str) -> dict | None:
    shape = SHAPES.get(name)
    if shape is None:
        return None
    return {k: int(getattr(shape, k)) for k in ("S", "E", "P", "H", "F")}
