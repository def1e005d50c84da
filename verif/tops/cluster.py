"""Testbench top for the cluster: captures stdout and the end of the run in hardware.

The cluster itself stays synthesisable; this wrapper adds what a testbench wants to read
once at the end instead of sampling every cycle from Python: a character buffer
(``stdout.mem``, ``stdout_count`` characters), ``done`` (exit, trap report or an access to
an unmapped address) and the cycle it happened in.

``char_valid``/``char_data`` repeat the cluster's stdout port, one character per cycle, for
harnesses that stream the output instead of reading the buffer at the end (the C++ harness,
``verif/harness``; ``char`` itself is a C++ keyword that Verilator would rename).

The inputs ``rst`` and ``fetch_enable`` pass through one register each before they reach the
cluster and the bookkeeping (domain ``run``: the ``sync`` clock with the registered reset), so
everything starts one cycle after the testbench releases them and ``done_cycles`` is
unchanged. The reason is simulation speed: Amaranth makes every register's next-state logic
depend on its domain's reset, and Verilator re-evaluates all logic that depends on a top-level
input on every ``eval()``; with the reset coming from a register that logic runs once per
cycle (about 15 % faster in the C++ harness, verif/harness). ``chip_id`` and ``chips`` pass
through a register for the same reason.

The chip-to-chip links appear as flat ports per link ``j``: ``link<j>_tx_valid``,
``link<j>_tx_ready``, ``link<j>_tx_payload`` (out) and ``link<j>_rx_valid``,
``link<j>_rx_ready``, ``link<j>_rx_payload`` (in), a beat laid out as
:func:`cluster_integration.link.beat_layout`. A testbench that leaves them alone has links
that never deliver and never accept (a transfer into a remote window then waits).
"""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cluster_integration.cluster import Cluster
from cluster_integration.link import beat_layout
from ita.cluster_config import DEFAULT, LINKS
from verif.tops.core import STDOUT_WORDS, TestRam

__all__ = ["ClusterTestTop"]


class ClusterTestTop(wiring.Component):
    """:class:`~cluster_integration.cluster.Cluster` plus run bookkeeping for testbenches."""

    def __init__(self, cluster=DEFAULT):
        self._cluster = cluster
        beat = beat_layout(cluster.dma_width).size
        links = {}
        for j in range(len(LINKS)):
            links.update({f"link{j}_tx_valid": Out(1), f"link{j}_tx_ready": In(1),
                          f"link{j}_tx_payload": Out(beat), f"link{j}_rx_valid": In(1),
                          f"link{j}_rx_ready": Out(1), f"link{j}_rx_payload": In(beat)})
        super().__init__({
            "fetch_enable": In(1), "done": Out(1), "done_cycles": Out(32),
            "stdout_count": Out(32), "char_valid": Out(1), "char_data": Out(8),
            "exit_valid": Out(1), "exit_code": Out(32), "trap_valid": Out(1),
            "trap_cause": Out(32), "trap_pc": Out(32), "bad_access": Out(1),
            "bad_core": Out(8), "bad_address": Out(32), "chip_id": In(8), "chips": In(8),
            **links,
        })

    def elaborate(self, platform):
        m = Module()
        m.domains.run = run = ClockDomain("run")
        run_reset, fetch_enable = Signal(init=1), Signal()
        m.d.sync += [run_reset.eq(ResetSignal("sync")), fetch_enable.eq(self.fetch_enable)]
        m.d.comb += [run.clk.eq(ClockSignal("sync")), run.rst.eq(run_reset)]

        m.submodules.cluster = cluster = DomainRenamer("run")(
            Cluster(self._cluster))
        stdout = TestRam(STDOUT_WORDS)
        m.submodules.stdout = stdout.instance()
        m.d.comb += cluster.fetch_enable.eq(fetch_enable)
        chip_id, chips = Signal(8), Signal(8)
        m.d.sync += [chip_id.eq(self.chip_id), chips.eq(self.chips)]
        m.d.comb += [cluster.chip_id.eq(chip_id), cluster.chips.eq(chips)]
        for j in range(len(LINKS)):
            tx, rx = getattr(cluster, f"tx{j}"), getattr(cluster, f"rx{j}")
            m.d.comb += [getattr(self, f"link{j}_tx_valid").eq(tx.valid),
                         getattr(self, f"link{j}_tx_payload").eq(tx.payload),
                         tx.ready.eq(getattr(self, f"link{j}_tx_ready")),
                         rx.valid.eq(getattr(self, f"link{j}_rx_valid")),
                         rx.payload.eq(getattr(self, f"link{j}_rx_payload")),
                         getattr(self, f"link{j}_rx_ready").eq(rx.ready)]
        m.d.comb += [self.char_valid.eq(cluster.char_valid), self.char_data.eq(cluster.char)]
        for name in ("exit_valid", "exit_code", "trap_valid", "trap_cause", "trap_pc",
                     "bad_access", "bad_core", "bad_address"):
            m.d.comb += getattr(self, name).eq(getattr(cluster, name))

        m.d.comb += [stdout.b_req.eq(cluster.char_valid & (self.stdout_count < STDOUT_WORDS)),
                     stdout.b_we.eq(1), stdout.b_be.eq(0b0001),
                     stdout.b_addr.eq(self.stdout_count), stdout.b_wdata.eq(cluster.char)]
        with m.If(cluster.char_valid):
            m.d.run += self.stdout_count.eq(self.stdout_count + 1)

        cycle = Signal(32)
        m.d.run += cycle.eq(cycle + 1)
        with m.If(~self.done & (cluster.exit_valid | cluster.trap_valid | cluster.bad_access)):
            m.d.run += [self.done.eq(1), self.done_cycles.eq(cycle)]
        return m
