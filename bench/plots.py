"""PNG figures of the benchmark report (matplotlib, Agg backend: no display needed).

Every function takes the ``results.json`` structure (:mod:`bench.suite`) and writes one file;
it returns the path, or None when the results hold nothing to draw. Each figure carries its
configuration and seed in the title; the report names the command under it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

__all__ = ["engine_utilization", "cluster_breakdown", "gemm_throughput", "sim_speed",
           "dma_rate", "minilm_cycles", "decoder_cycles", "multichip_scaling", "write_all"]

_DPI = 110


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _passed(rows):
    return [r for r in rows if r.get("status") == "PASS"]


def engine_utilization(results: dict, path: Path, *, seed: int) -> Path | None:
    """Utilisation vs shape: one panel per sweep, with the ideal and the reference port bound."""
    rows = _passed(results.get("engine", []))
    panels = []
    for mode, sweep, xkey, label in (
            ("attention", "diagonal", "S", "S = E = P"), ("attention", "S", "S", "S (E = P fixed)"),
            ("attention", "E", "E", "E (S = P fixed)"), ("attention", "P", "P", "P (S = E fixed)"),
            ("ffn", "diagonal", "S", "S = E = F"), ("ffn", "F", "F", "F (S = E fixed)")):
        sel = [r for r in rows if r["mode"] == mode and r["sweep"] == sweep]
        if sel and sweep != "diagonal":
            # runs of other sweeps on the same line (e.g. the base shape on the diagonal)
            fixed = {k: sel[0][k] for k in "SEPF" if k in sel[0] and k != xkey}
            sel = [r for r in rows if r["mode"] == mode and "H" not in r
                   and all(r.get(k) == v for k, v in fixed.items())]
            sel = list({r[xkey]: r for r in sel}.values())
        sel.sort(key=lambda r: r[xkey])
        if sel:
            panels.append((mode, sweep, xkey, label, sel))
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (mode, sweep, xkey, label, sel) in zip(axes.flat, panels, strict=False):
        x = [r[xkey] for r in sel]
        util = [r["result"]["utilization"] for r in sel]
        bound = [r.get("port_bound_utilization") for r in sel]
        ax.axhline(100, color="0.3", linestyle=":", label="ideal (N*M MACs/cycle)")
        ax.plot(x, bound, "s--", color="tab:red", label="reference: one shared port (bound)")
        ax.plot(x, util, "o-", color="tab:blue", label="this engine (simulated)")
        fixed = {k: sel[0][k] for k in ("S", "E", "P", "F") if k in sel[0] and k != xkey}
        if sweep != "diagonal":
            label = f"{xkey} (" + ", ".join(f"{k}={v}" for k, v in fixed.items()) + ")"
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(v) for v in x])
        ax.set_xlabel(label)
        ax.set_ylabel("utilisation (%)")
        ax.set_ylim(0, 105)
        ax.set_title(f"{mode}: {sweep} sweep", fontsize=10)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Engine utilisation, N=16 M=64, STALLS=0, seed {seed}", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def cluster_breakdown(rows: list[dict], path: Path, *, seed: int) -> Path | None:
    """Horizontal 100 % bars: each attention-head run's cycles by component."""
    rows = [r for r in rows if r.get("parts")]
    if not rows:
        return None
    parts = list(rows[0]["parts"])
    colors = ["tab:green", "tab:olive", "tab:orange", "tab:red", "tab:purple", "tab:gray"]
    fig, ax = plt.subplots(figsize=(8.0, 0.8 + 0.7 * len(rows)))
    names = [r["label"] for r in rows]
    left = [0.0] * len(rows)
    for index, part in enumerate(parts):
        shares = [100.0 * max(r["parts"][part], 0) / r["run"] for r in rows]
        ax.barh(names, shares, left=left, label=part, color=colors[index % len(colors)])
        left = [a + b for a, b in zip(left, shares, strict=True)]
    for y, r in enumerate(rows):
        ax.text(101, y, f"{r['run']:,} cycles", va="center", fontsize=8)
    ax.set_xlim(0, 125)
    ax.set_xlabel("share of the run's cycles (%)")
    ax.invert_yaxis()
    ax.set_title(f"Attention on the cluster: where the cycles go (seed {seed})", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.05 *
                                                                       (3 - min(3, len(rows)))))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def gemm_throughput(rows: list[dict], path: Path, *, seed: int) -> Path | None:
    rows = _passed(rows)
    if not rows:
        return None
    names = [f"{r['M']}x{r['K']}x{r['N']}" for r in rows]
    macs = [float(r["result"]["macs_per_cycle"]) for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(rows)), 3.6))
    ax.bar(names, macs, color="tab:blue", label="kernel (barrier to barrier)")
    ax.axhline(32, color="0.3", linestyle=":", label="peak: 8 cores x 4 MACs (cv.sdotsp.b)")
    ax.set_xlabel("M x K x N")
    ax.set_ylabel("int8 MACs per cycle")
    ax.set_ylim(0, 34)
    ax.set_title(f"gemm on 8 CV32E40P cores (seed {seed})", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def sim_speed(speed: dict, path: Path) -> Path | None:
    """Grouped bars: simulated cycles per second for each design and flow (log scale)."""
    bars = []
    for design in ("engine", "cluster"):
        summary = speed.get(design, {}).get("summary", {})
        for flow, label in (("cocotb", "cocotb + Verilator"), ("cpp", "C++ harness")):
            s = summary.get(flow)
            if s and s.get("loop_cycles_per_s"):
                bars.append((design, label, s["loop_cycles_per_s"],
                             s.get("end_to_end_cycles_per_s")))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    labels = [f"{d}\n{f}" for d, f, _, _ in bars]
    x = range(len(bars))
    ax.bar([i - 0.2 for i in x], [b[2] for b in bars], width=0.4, color="tab:blue",
           label="simulation loop")
    ax.bar([i + 0.2 for i in x], [b[3] or 0 for b in bars], width=0.4, color="tab:orange",
           label="whole command")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("simulated cycles per second (median)")
    configs = []
    for design in ("engine", "cluster"):
        cfg = speed.get(design, {}).get("config")
        if cfg:
            configs.append(f"{design}: " + " ".join(f"{k}={v}" for k, v in cfg.items()))
    ax.set_title("Simulator speed (wall clock)\n" + "; ".join(configs), fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def dma_rate(dma: dict, path: Path) -> Path | None:
    """L2 -> L1 bytes per cycle against transfer size, one line per DMA width (1-D copies),
    the 2-D copies of short rows as separate markers, and each width's peak as a dotted
    line."""
    rows = _passed(dma.get("copies", []))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index, width in enumerate(sorted({r["width"] for r in rows})):
        color = f"C{index}"
        mine = [r for r in rows if r["width"] == width]
        flat = sorted((r["bytes"], r["result"]["bytes_per_cycle"]) for r in mine
                      if r["rows"] == 1)
        if flat:
            ax.plot([x for x, _ in flat], [y for _, y in flat], "o-", color=color,
                    label=f"{width} bit, 1-D")
        for r in mine:
            if r["rows"] > 1:
                ax.plot(r["bytes"], r["result"]["bytes_per_cycle"], "s", color=color,
                        markerfacecolor="none",
                        label=f"{width} bit, 2-D rows of {r['row_bytes']} B")
        ax.axhline(width / 8, color=color, linestyle=":", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per transfer")
    ax.set_ylabel("bytes per cycle (START grant to event)")
    ax.set_title("DMA L2 -> L1 by beat width (python -m bench.dma_rate MODE=copy)", fontsize=9)
    ax.legend(fontsize=7, loc="center right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def minilm_cycles(rows: list[dict], path: Path) -> Path | None:
    """The whole MiniLM's cycles against the sentence's tokens, and each layer's (the
    program's block counters) as a stack; ``rows`` from :func:`bench.report.minilm_rows`."""
    rows = [r for r in rows if r.get("cycles")]
    if not rows:
        return None
    tokens = [r["tokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    depth = max(len(r["blocks"]) for r in rows)
    if depth and all(len(r["blocks"]) == depth for r in rows):
        stack = [[r["blocks"][k] / 1e6 for r in rows] for k in range(depth)]
        ax.stackplot(tokens, *stack, labels=[f"layer {k}" for k in range(depth)], alpha=0.6)
    ax.plot(tokens, [r["cycles"] / 1e6 for r in rows], "ko-", label="whole model")
    for r in rows:
        ax.annotate(f"{r['cycles'] / 1e6:.2f} M", (r["tokens"], r["cycles"] / 1e6),
                    textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(tokens, [str(t) for t in tokens])
    ax.set_xlabel("tokens ([CLS] and [SEP] included)")
    ax.set_ylabel("cycles per inference (millions)")
    ax.set_ylim(0, max(r["cycles"] for r in rows) / 1e6 * 1.4)
    ax.set_title("all-MiniLM-L6-v2 on the cluster, weights in L3 (make sim TEST=minilm)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", ncol=4)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def decoder_cycles(rows: list[dict], path: Path) -> Path | None:
    """SmolLM2's prefill and a decoding step's cycles against the prompt's tokens, with the
    step's weight-streaming bound; ``rows`` from :func:`bench.report.decoder_rows`."""
    rows = [r for r in rows if r.get("prefill_cycles")]
    if not rows:
        return None
    tokens = [r["prompt_tokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(tokens, [r["prefill_cycles"] / 1e6 for r in rows], "o-", label="prefill")
    ax.plot(tokens, [r["decode_cycles"] / 1e6 for r in rows], "s-", label="a decoding step")
    ax.plot(tokens, [r["bound_cycles"] / 1e6 for r in rows], "k--",
            label="a step's bound (weight bytes / L3 rate)")
    ax.set_xticks(tokens, [str(t) for t in tokens])
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("cycles (millions)")
    ax.set_ylim(0, None)
    layers = rows[0]["result"].get("layers", "?")
    ax.set_title(f"SmolLM2-135M on the cluster, {layers} layer(s), weights in L3 "
                 "(make sim TEST=generate)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def multichip_scaling(rows: list[dict], path: Path) -> Path | None:
    """Speedup (against one chip streaming from L3) and parallel efficiency (against k
    resident chips) of the partitioned encoder layer; ``rows`` from
    :func:`bench.report.multichip_rows`."""
    rows = [r for r in rows if r.get("cycles")]
    if not rows:
        return None
    chips = [r["chips"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(chips, [r["speedup"] for r in rows], "o-", label="speedup vs one chip, L3")
    ax.plot(chips, chips, "k:", label="linear")
    ax.set_xticks(chips, [str(c) for c in chips])
    ax.set_xlabel("chips")
    ax.set_ylabel("speedup")
    ax.set_ylim(0, None)
    other = ax.twinx()
    other.plot(chips, [r["efficiency"] for r in rows], "s--", color="tab:red",
               label="efficiency vs k resident chips")
    other.set_ylim(0, 1.1)
    other.set_ylabel("parallel efficiency")
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    ax.set_title("encoder layer over a ring of chips (make sim TEST=multichip MODEL=encoder)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def write_all(results: dict, out: Path, *, seed: int, cluster_rows: list[dict],
              minilm_rows: list[dict] = (), decoder_rows: list[dict] = (),
              multichip_rows: list[dict] = ()) -> dict:
    """Write every figure that has data; returns {name: file name}."""
    made = {}
    for name, fn in (
            ("engine_utilization", lambda p: engine_utilization(results, p, seed=seed)),
            ("cluster_breakdown", lambda p: cluster_breakdown(cluster_rows, p, seed=seed)),
            ("gemm", lambda p: gemm_throughput(results.get("gemm", []), p, seed=seed)),
            ("sim_speed", lambda p: sim_speed(results.get("speed", {}), p)),
            ("dma_rate", lambda p: dma_rate(results.get("dma", {}), p)),
            ("minilm_cycles", lambda p: minilm_cycles(list(minilm_rows), p)),
            ("decoder_cycles", lambda p: decoder_cycles(list(decoder_rows), p)),
            ("multichip_scaling", lambda p: multichip_scaling(list(multichip_rows), p))):
        path = fn(out / f"{name}.png")
        if path is not None:
            made[name] = path.name
    return made
