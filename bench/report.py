"""``build/bench/report.md`` and ``results.json`` from the measurements of :mod:`bench.suite`."""

from __future__ import annotations

import json
from pathlib import Path

from bench import model, trace_links

__all__ = ["cluster_rows", "minilm_rows", "decoder_rows", "multichip_rows", "write_json",
           "write_markdown"]

_PARTS = ("ITA compute (ideal)", "engine overhead", "HWPE overhead", "programming (core 0)",
          "DMA, head sum, barriers", "boot and exit")


def _key(row, names):
    return tuple(int(row.get(n, 1 if n == "H" else 0)) for n in names)


def _find(rows, **want):
    for r in rows:
        if r.get("status") == "PASS" and all(int(r.get(k, 1 if k == "H" else 0)) == v
                                             for k, v in want.items()):
            return r
    return None


def cluster_rows(results: dict) -> list[dict]:
    """One row per attention-head configuration of the cluster section, with the engine and
    HWPE runs of the same shape and heads, and the cycles split into :data:`_PARTS`.

    engine overhead = engine - ideal; HWPE overhead = HWPE trigger-to-event - engine;
    programming = the program's ita_cycles (core 0: program the jobs, trigger, sleep until the
    event) - HWPE; DMA etc. = the program's total_cycles - ita_cycles; boot = the run's cycles -
    total_cycles. A part is None when the run it needs is missing.
    """
    out = []
    for c in results.get("cluster", []):
        if c.get("status") != "PASS":
            continue
        dims = {k: int(c[k]) for k in ("S", "E", "P", "H")}
        r = c["result"]
        eng = _find([e for e in results.get("engine", []) if e["mode"] == "attention"], **dims)
        hw = _find([h for h in results.get("hwpe", []) if h["mode"] == "attention"], **dims)
        ideal = r["ideal_cycles"]
        e_cyc = eng["result"]["cycles"] if eng else None
        h_cyc = hw["result"]["cycles"] if hw else None
        row = {"label": "S={S} E={E} P={P} H={H}".format(**dims), **dims, "ideal": ideal,
               "engine": e_cyc, "hwpe": h_cyc, "ita": r.get("ita_cycles"),
               "program": r.get("total_cycles"), "run": r["cycles"], "command": c["command"]}
        if None not in (e_cyc, h_cyc, row["ita"], row["program"]):
            values = (ideal, e_cyc - ideal, h_cyc - e_cyc, row["ita"] - h_cyc,
                      row["program"] - row["ita"], row["run"] - row["program"])
            row["parts"] = dict(zip(_PARTS, values, strict=True))
        out.append(row)
    return out


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return path


def _fmt(value, digits=0):
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, (int, float)):
        return f"{round(value):,}"
    return str(value)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _engine_section(results, figures, seed):
    rows = results.get("engine", [])
    if not rows:
        return []
    acc = model.tile_accesses()
    lines = ["## Engine utilisation vs shape", "",
             f"`make sim TEST=ita_attention|ita_ffn S= E= P= F= STALLS=0 SEED={seed}` (the "
             "cocotb testbench of the engine alone, N=16, M=64, no stalls). Utilisation = "
             "ideal cycles (natural MACs / 1024) / cycles from `start` to the last output. "
             "Dimensions that are not multiples of 64 are padded to whole tiles and the "
             "padding counts as lost work (S=E=P=32 uses an eighth of one tile's MACs).", ""]
    if "engine_utilization" in figures:
        lines += [f"![engine utilisation]({figures['engine_utilization']})", ""]
    table = []
    for r in rows:
        res = r["result"]
        table.append([r["mode"], r["sweep"], r.get("S", "-"), r.get("E", "-"),
                      r.get("P", "-"), r.get("F", "-"), _fmt(res.get("ideal_cycles")),
                      _fmt(res.get("cycles")), res.get("utilization", "-"),
                      _fmt(r.get("port_bound_cycles")), r.get("port_bound_utilization", "-"),
                      r["status"], f"`{r['command']}`"])
    lines += _table(["mode", "sweep", "S", "E", "P", "F", "ideal", "cycles", "util %",
                     "ref. port bound", "bound %", "status", "command"], table)
    lines += ["", "### The reference design's memory-port bound", "",
              "The public ITA (pulp-platform/ITA, `src/hwpe`) has one 1024-bit TCDM port shared "
              "by its input, weight, bias and output streamers, and runs one job per pair of "
              "64 x 64 tiles. A job computes for 64 x 64 x 64 / 1024 = 256 cycles; in that job "
              f"the port carries the input tile once per 16-column slab ({acc['input']} "
              f"accesses of 128 B), the weight tile ({acc['weight']}), the biases "
              f"({acc['bias']} accesses of 96 B, none in QK and AV) and, on the last inner "
              f"tile of each output tile, the output ({acc['output']} strobed writes of two "
              f"16-byte rows). One access per cycle at best makes an output-emitting job last "
              f"at least {acc['input'] + acc['weight'] + acc['bias'] + acc['output']} cycles "
              f"(88 % of peak) and an inner job 256. The bound line sums these over every "
              "tile of every step (Q, K, V, QK, AV, OW or F1, F2; shapes padded to whole "
              "tiles) and divides the ideal cycles by it. It ignores bank conflicts and job "
              "programming, so the reference can only be below it. This engine streams its "
              "operands through separate ports (the HWPE reuses input tiles across slabs), "
              "which is why it can pass the line.", ""]
    return lines


def _hwpe_cluster_section(results, figures, crow):
    lines = ["## HWPE and cluster: one attention head, trigger to completion", ""]
    hw = results.get("hwpe", [])
    if hw:
        lines += ["`make sim TEST=ita_hwpe ... STALLS=0`: the HWPE (control slave, streamers, "
                  "one 1024-bit TCDM port) with a pyuvm TCDM memory; cycles from the TRIGGER "
                  "write to the completion event.", ""]
        table = []
        for r in hw:
            res = r["result"]
            table.append([r["mode"], r.get("S"), r.get("E"), r.get("P", "-"), r.get("F", "-"),
                          r.get("H", 1), _fmt(res.get("ideal_cycles")), _fmt(res.get("cycles")),
                          res.get("utilization", "-"), _fmt(res.get("tcdm_accesses")),
                          r["status"], f"`{r['command']}`"])
        lines += _table(["mode", "S", "E", "P", "F", "H", "ideal", "cycles", "util %",
                         "TCDM accesses", "status", "command"], table) + [""]
    if crow:
        lines += ["`make sim TEST=attention_head S= E= P= H= SEED=`: C on the 8 cores; core 0 "
                  "moves the inputs to L1 with the DMA, programs one ITA job per head and "
                  "sleeps until the event; the cores sum and requantize the heads. `ita` is the "
                  "program's `ita_cycles` (core 0, from programming to the event), `program` "
                  "its `total_cycles`, `run` the cycles from reset to exit. The engine and HWPE "
                  "columns are the runs above with the same shape and heads.", ""]
        if "cluster_breakdown" in figures:
            lines += [f"![cluster breakdown]({figures['cluster_breakdown']})", ""]
        table = []
        for r in crow:
            parts = r.get("parts") or {}
            table.append([r["label"], _fmt(r["ideal"]), _fmt(r["engine"]), _fmt(r["hwpe"]),
                          _fmt(r["ita"]), _fmt(r["program"]), _fmt(r["run"]),
                          *(_fmt(parts.get(p)) for p in _PARTS[1:]), f"`{r['command']}`"])
        lines += _table(["config", "ideal", "engine", "HWPE", "ita", "program", "run",
                         *_PARTS[1:], "command"], table) + [""]
    for c in results.get("cluster", []):
        if c.get("status") != "PASS":
            lines += [f"FAILED: `{c['command']}`", ""]
    return lines


def _kernel_section(results, figures, notes, seed):
    lines = ["## Kernels on the cores", ""]
    gemm = results.get("gemm", [])
    if gemm:
        lines += ["`make sim TEST=gemm M= K= N=`: int8 GEMM with requantization on 8 cores "
                  "(`cv.sdotsp.b`, 4 MACs per instruction), bit-exact against `ita.golden`; "
                  "kernel cycles from barrier to barrier.", ""]
        if "gemm" in figures:
            lines += [f"![gemm]({figures['gemm']})", ""]
        table = [[f"{r['M']}x{r['K']}x{r['N']}", _fmt(r["result"].get("cycles")),
                  _fmt(r["result"].get("ideal_cycles")), r["result"].get("macs_per_cycle", "-"),
                  r["result"].get("utilization", "-"), _fmt(r["result"].get("total_cycles")),
                  r["status"], f"`{r['command']}`"] for r in gemm]
        lines += _table(["M x K x N", "kernel cycles", "ideal (32 MACs/cycle)", "MACs/cycle",
                         "util %", "run cycles", "status", "command"], table) + [""]
    k = results.get("kernels")
    if k:
        lines += [f"`{k['command']}` ({k['status']}): the encoder kernels of `sw/kernels` on "
                  "the 8 cores; their own report:", "", "```", *k.get("lines", []), "```", "",
                  f"RESULT: `{_result_words(k['result'])}`", ""]
    lines += [f"Note: {n}" for n in notes if n.startswith("kernels")]
    return lines + [""]


def _result_words(result: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in result.items())


def _encoder_section(results, notes):
    lines = ["## Encoder layer", ""]
    for e in results.get("encoder", []):
        res = e["result"]
        lines += [f"### {e['model']}: `{e['command']}` ({e['status']})", ""]
        if res.get("ops_per_cycle") is not None:
            lines += [f"{_fmt(res.get('ops'))} operations (2 per MAC) in "
                      f"{_fmt(res.get('layer_cycles', res.get('cycles')))} layer cycles: "
                      f"**{res['ops_per_cycle']} operations per cycle**"
                      + (f", {res['peak_pct']} % of the ITA's peak" if "peak_pct" in res else "")
                      + (f"; ITA busy {res['ita_busy_pct']} % of the layer"
                         if "ita_busy_pct" in res else "") + ".", ""]
        elif e.get("shape") and res.get("cycles"):
            lines += [f"{_fmt(e['matmul_ops'])} matrix-product operations (2 per MAC, from "
                      f"the shape {e['shape']}) in {_fmt(res['cycles'])} cycles: "
                      f"{e['matmul_ops'] / res['cycles']:.1f} operations per cycle.", ""]
        lines += [f"RESULT: `{_result_words(res)}`", "", "Program report:", "", "```",
                  *e.get("lines", []), "```", ""]
    lines += [f"Note: {n}" for n in notes if n.startswith("encoder")]
    return lines + [""]


#: The clock of the real-model section's latencies (``verif.cluster.minilm.CLOCK_MHZ``).
_MINILM_CLOCK_MHZ = 500


def minilm_rows(results: dict) -> list[dict]:
    """One row per passed whole-model run, by token count: cycles, latency and the cycles of
    each block as the program counted them."""
    rows = []
    for r in (results.get("minilm") or {}).get("runs", []):
        res = r.get("result") or {}
        if r.get("status") != "PASS" or not res.get("tokens"):
            continue
        cycles = int(res.get("cycles", 0))
        rows.append({"text": r["text"], "tokens": int(res["tokens"]), "cycles": cycles,
                     "latency_ms": cycles / (_MINILM_CLOCK_MHZ * 1e3),
                     "blocks": list(r.get("blocks") or []), "result": res,
                     "command": r["command"]})
    return sorted(rows, key=lambda row: row["tokens"])


def _minilm_section(results, figures, notes):
    section = results.get("minilm") or {}
    runs, acc = section.get("runs", []), section.get("accuracy")
    if not runs and not acc:
        return [f"Note: {n}" for n in notes if n.startswith("minilm")]
    lines = ["## Real model: all-MiniLM-L6-v2 on the cluster", "",
             "`make sim TEST=minilm TEXT=...`: the host tokenizes the sentence and looks up its "
             "embedding rows; one compiled program runs the embedding LayerNorm, the six layers "
             "and the pooling's column sums on the cluster with the weights in L3, and checks "
             "the last layer's output and the sums byte for byte against `ita.quant.integer`. "
             "Cycles are the program's (core 0, first block to last); latency at "
             f"{_MINILM_CLOCK_MHZ} MHz; cosine against the float model.", ""]
    if "minilm_cycles" in figures:
        lines += [f"![MiniLM cycles vs tokens]({figures['minilm_cycles']})", ""]
    rows = minilm_rows(results)
    table = []
    for row in rows:
        res = row["result"]
        table.append([row["tokens"], _fmt(row["cycles"]), f"{row['latency_ms']:.2f}",
                      res.get("ops_per_cycle", "-"), res.get("peak_pct", "-"),
                      res.get("ita_busy_pct", "-"), _fmt(res.get("dma_bytes")),
                      res.get("mismatches", "-"), res.get("cos", "-"), f"`{row['command']}`"])
    if table:
        lines += _table(["tokens", "cycles", f"ms at {_MINILM_CLOCK_MHZ} MHz", "ops/cycle",
                         "% of ITA peak", "ITA busy %", "DMA bytes", "mismatches", "cos",
                         "command"], table) + [""]
    with_blocks = [row for row in rows if row["blocks"]]
    if with_blocks:
        lines += ["Cycles per layer (the program's cycle counter at the end of each block; "
                  "layer 0 includes the embedding LayerNorm, layer 5 the pooling):", ""]
        depth = max(len(row["blocks"]) for row in with_blocks)
        body = [[f"layer {k}", *(_fmt(row["blocks"][k]) if k < len(row["blocks"]) else "-"
                                 for row in with_blocks)] for k in range(depth)]
        body.append(["sum", *(_fmt(sum(row["blocks"])) for row in with_blocks)])
        lines += _table(["block", *(f"{row['tokens']} tokens" for row in with_blocks)],
                        body) + [""]
    for r in runs:
        if r.get("status") != "PASS":
            lines += [f"FAILED: `{r['command']}`", ""]
    if rows and rows[-1]["result"]:
        longest = next(r for r in runs if r["command"] == rows[-1]["command"])
        # its own report, without the per-phase, per-job and per-block cycle lists
        text = [t for t in longest.get("lines", [])
                if not t.startswith(("phases:", "jobs:", "blocks:"))]
        if text:
            lines += [f"Program report of the longest sentence ({rows[-1]['tokens']} tokens):",
                      "", "```", *text, "```", ""]
    if acc:
        res = acc.get("result") or {}
        lines += [f"Accuracy, `{acc['command']}` ({acc['status']}): the integer model (the "
                  "bytes the cluster reproduces) against the float model on the "
                  f"{res.get('sentences', '-')} held sentences ({res.get('tokens', '-')} "
                  "tokens, none used for calibration) and their "
                  f"{res.get('pairs', '-')} hand-made pairs:", ""]
        lines += _table(["cos mean", "cos min", "Spearman, pairs", "Spearman, all pairs"],
                        [[res.get(k, "-") for k in ("cos_mean", "cos_min", "spearman_pairs",
                                                     "spearman_all")]])
        lines += ["", "Goals: cos mean >= 0.985, min >= 0.95, Spearman >= 0.99 on the pairs and "
                  ">= 0.97 on all pairs.", ""]
    lines += [f"Note: {n}" for n in notes if n.startswith("minilm")]
    return lines + [""]


def decoder_rows(results: dict) -> list[dict]:
    """One row per passed ``make sim TEST=generate`` run, by prompt length: the prefill's
    cycles, a decoding step's mean cycles against its weight-streaming bound."""
    rows = []
    for r in (results.get("decoder") or {}).get("runs", []):
        res = r.get("result") or {}
        if r.get("status") != "PASS" or not res.get("prompt_tokens"):
            continue
        rows.append({"prompt": r["prompt"], "prompt_tokens": int(res["prompt_tokens"]),
                     "prefill_cycles": int(res.get("prefill_cycles", 0)),
                     "decode_cycles": int(res.get("decode_cycles", 0)),
                     "bound_cycles": int(res.get("bound_cycles", 0)), "result": res,
                     "command": r["command"]})
    return sorted(rows, key=lambda row: row["prompt_tokens"])


def _decoder_section(results, figures, notes):
    section = results.get("decoder") or {}
    runs, quality = section.get("runs", []), section.get("quality")
    if not runs and not quality:
        return [f"Note: {n}" for n in notes if n.startswith("decoder")]
    lines = ["## Real model: SmolLM2-135M generates on the cluster", "",
             "`make sim TEST=generate PROMPT=... TOKENS=n LAYERS=k`: the prefill of the prompt, "
             "then n decoding steps against the KV cache, through the first k real layers with "
             "their weights in L3; every layer's rows and cache are checked against "
             "`ita.quant.llama`, the head runs on the host. The bound is a step's weight bytes "
             "over the L3 link's rate; a subset of the layers gives no meaningful text, the "
             "cycles per layer are what a whole model multiplies.", ""]
    if "decoder_cycles" in figures:
        lines += [f"![SmolLM2 cycles vs prompt tokens]({figures['decoder_cycles']})", ""]
    table = []
    for row in decoder_rows(results):
        res = row["result"]
        table.append([row["prompt_tokens"], res.get("layers", "-"), _fmt(row["prefill_cycles"]),
                      res.get("prefill_peak_pct", "-"), _fmt(row["decode_cycles"]),
                      _fmt(row["bound_cycles"]), res.get("bound_pct", "-"),
                      res.get("tokens_per_s", "-"), res.get("mismatches", "-"),
                      f"`{row['command']}`"])
    if table:
        lines += _table(["prompt tokens", "layers", "prefill cycles", "prefill % of ITA peak",
                         "cycles per step", "bound", "bound / step %", "tokens/s at "
                         f"{_MINILM_CLOCK_MHZ} MHz", "mismatches", "command"], table) + [""]
    for r in runs:
        if r.get("status") != "PASS":
            lines += [f"FAILED: `{r['command']}`", ""]
    if quality:
        res = quality.get("result") or {}
        lines += [f"Quality, `{quality['command']}` ({quality['status']}): the integer model "
                  "(the rows the cluster reproduces) against the float model on the held "
                  f"paragraphs ({res.get('positions', '-')} positions, none used for "
                  "calibration):", ""]
        lines += _table(["top-1 agreement", "top5", "perplexity float", "perplexity integer",
                         "KL (nats)"],
                        [[res.get(k, "-") for k in ("top1_agreement", "top5", "ppl_float",
                                                     "ppl_integer", "kl")]])
        lines += ["", "Goals: top-1 >= 0.75, top5 >= 0.98, perplexity at most 10 % above "
                  "float, KL <= 0.15.", ""]
    lines += [f"Note: {n}" for n in notes if n.startswith("decoder")]
    return lines + [""]


def multichip_rows(results: dict) -> list[dict]:
    """One row per passed multi-chip run, by chip count."""
    rows = []
    for r in results.get("multichip") or []:
        res = r.get("result") or {}
        if r.get("status") != "PASS" or not res.get("cycles"):
            continue
        rows.append({"chips": int(r["chips"]), "cycles": int(res["cycles"]),
                     "speedup": float(res.get("speedup", 0)),
                     "efficiency": float(res.get("efficiency", 0)), "result": res,
                     "command": r["command"]})
    return sorted(rows, key=lambda row: row["chips"])


def _multichip_section(results, figures, notes):
    runs = results.get("multichip") or []
    if not runs:
        return [f"Note: {n}" for n in notes if n.startswith("multichip")]
    lines = ["## Several chips: an encoder layer split over a ring", "",
             "`make sim TEST=multichip MODEL=encoder CHIPS=k`: a MiniLM-shaped layer (random "
             "weights) split tensor-parallel over k chips (heads, W1 and W2 columns, LayerNorm "
             "rows), one compiled program per chip, every chip's output checked against the "
             "one-chip integer model. Speedup is against one chip streaming its weights from "
             "L3; efficiency against k times one chip with its weights resident in L2.", ""]
    if "multichip_scaling" in figures:
        lines += [f"![speedup and efficiency against chips]({figures['multichip_scaling']})",
                  ""]
    table = []
    for row in multichip_rows(results):
        res = row["result"]
        table.append([row["chips"], res.get("S", "-"), _fmt(row["cycles"]),
                      _fmt(res.get("baseline_cycles")), _fmt(res.get("resident_cycles")),
                      res.get("speedup", "-"), res.get("efficiency", "-"),
                      _fmt(res.get("link_bytes")), _fmt(res.get("allreduce_cycles")),
                      res.get("mismatches", "-"), f"`{row['command']}`"])
    if table:
        lines += _table(["chips", "S", "cycles", "baseline (L3)", "one chip resident",
                         "speedup", "efficiency", "link bytes", "collective cycles",
                         "mismatches", "command"], table) + [""]
    for r in runs:
        if r.get("status") != "PASS":
            lines += [f"FAILED: `{r['command']}`", ""]
    lines += [f"Note: {n}" for n in notes if n.startswith("multichip")]
    return lines + [""]


def _speed_section(results, figures):
    speed = results.get("speed", {})
    if not speed:
        return []
    lines = ["## Simulator speed", "",
             "Each flow ran the same job several times in this one `make bench` run; medians. "
             "`loop`: cycles per second of the simulation itself (C++: the harness's own "
             "measurement of its loop, also per CPU second; cocotb: the cycles the cocotb test "
             "simulated over its real time from the JUnit file, which includes the testbench's "
             "Python, e.g. drawing the golden vectors). `command`: RESULT cycles over the whole "
             "command (process start, model cache check, data preparation). CPU times are of "
             "the whole process tree.", ""]
    if "sim_speed" in figures:
        lines += [f"![simulator speed]({figures['sim_speed']})", ""]
    table = []
    for design in ("engine", "cluster"):
        d = speed.get(design)
        if not d:
            continue
        cfg = ", ".join(f"{k}={v}" for k, v in d["config"].items())
        for flow, label in (("cocotb", "cocotb + Verilator"), ("cpp", "C++ harness")):
            s = d.get("summary", {}).get(flow)
            cmd = d.get(f"{flow}_command", "")
            if not s:
                table.append([design, label, cfg, "-", "-", "-", "-", "-", "-", "-",
                              f"`{cmd}`"])
                continue
            table.append([design, label, cfg, _fmt(s["cycles"]), s["runs"],
                          _fmt(s["loop_cycles_per_s"]), _fmt(s["loop_cpu_cycles_per_s"]),
                          _fmt(s["wall_s"], 2), _fmt(s["cpu_s"], 2),
                          _fmt(s["end_to_end_cycles_per_s"]), f"`{cmd}`"])
    lines += _table(["design", "flow", "configuration", "cycles", "runs", "loop cycles/s",
                     "loop cycles/CPU s", "command wall s", "command CPU s", "command cycles/s",
                     "command"], table) + [""]
    for design in ("engine", "cluster"):
        d = speed.get(design)
        if not d:
            continue
        agree = d.get("summary", {}).get("cycles_agree")
        if agree is not None:
            lines.append(f"- {design}: both flows simulated the same job for the same number "
                         f"of cycles: {'yes' if agree else 'NO (investigate)'}.")
        b = d.get("cpp_build", {})
        if b.get("status") == "PASS":
            how = "built" if b["rebuilt"] else "taken from the cache"
            lines.append(f"- {design}: C++ model {how} in {b['wall_s']} s (CPU {b['cpu_s']} s).")
    return lines + [""] + _profile_table(speed.get("profiles") or [])


def _profile_table(rows):
    """Before and after each speed change: the cluster gemm once per ``SIM_PROFILE``."""
    if not rows:
        return []
    lines = ["### Simulator speed by build profile (cluster gemm)", "",
             "The speed section's gemm once per `SIM_PROFILE` (`hw/toolchain.py`); each profile "
             "adds one change to the one above it, so each row against the one above is the "
             "effect of that change, measured in this run. cocotb loop: simulated cycles over the "
             "cocotb test's real time (loads and checks included); command CPU: the whole "
             "`make sim` process tree. C++: the harness's loop, per wall and per CPU second; "
             "profiles with the same model hash share one build.", ""]
    table = []
    for r in rows:
        co, cpp, b = r.get("cocotb", {}), r.get("cpp") or {}, r.get("cpp_build", {})
        res = cpp.get("result", {})
        loop, cpp_loop = co.get("loop_cycles_per_s"), res.get("sim_cycles_per_s")
        ratio = f"{cpp_loop / loop:.1f}x" if loop and cpp_loop else "-"
        model = (f"{b.get('digest', '-')} ({'built' if b.get('rebuilt') else 'cached'}, "
                 f"CPU {_fmt(b.get('cpu_s'), 1)} s)" if b.get("status") == "PASS" else "FAIL")
        table.append([r["profile"], r["about"], co.get("status", "-"), _fmt(loop),
                      _fmt(co.get("cpu_s"), 1), cpp.get("status", "-"), _fmt(cpp_loop),
                      _fmt(res.get("cpu_cycles_per_s")), ratio, model,
                      f"`{r['cocotb_command']}`"])
    lines += _table(["profile", "change", "cocotb", "cocotb loop cycles/s", "cocotb command CPU s",
                     "C++", "C++ loop cycles/s", "C++ loop cycles/CPU s",
                     "C++ / cocotb loop", "C++ model", "cocotb command"], table)
    return lines + [""]


def write_markdown(path: Path, results: dict, meta: dict, figures: dict, crow: list[dict],
                   notes: list[str], failures: list[dict]) -> Path:
    seed = meta["seed"]
    lines = ["# ITA cluster benchmarks", "",
             f"Written by `{meta['command']}` in {meta['wall_s']:.0f} s wall clock "
             f"({meta['cpu_s']:.0f} s CPU of the simulations) on a {meta['cpus']}-CPU machine "
             f"(load average {meta['load_before']} before, {meta['load_after']} after; other "
             "jobs may share it, so wall-clock speeds are lower bounds). Seed "
             f"{seed} everywhere. Cycle counts are exact and repeatable; each row names the "
             "command that reproduces it. Machine-readable: `results.json`.", ""]
    if failures:
        lines += ["**Failures:**", ""] + [f"- `{f['command']}`" for f in failures] + [""]
    lines += _engine_section(results, figures, seed)
    lines += _hwpe_cluster_section(results, figures, crow)
    lines += _kernel_section(results, figures, notes, seed)
    lines += _encoder_section(results, notes)
    lines += _minilm_section(results, figures, notes)
    lines += _decoder_section(results, figures, notes)
    lines += _multichip_section(results, figures, notes)
    lines += trace_links.section(results.get("traces", []))
    lines += _speed_section(results, figures)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
