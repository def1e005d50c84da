"""The CV32E40P RISC-V core as an Amaranth component, and its SystemVerilog sources.

The RTL comes from the pinned ``pythondata-cpu-cv32e40p`` package (OpenHW CV32E40P v1.0.1+,
master of July 2024); :class:`Cv32e40p` instantiates its ``cv32e40p_top`` as an Amaranth
``Instance``, so every design that contains a core is built from its own Verilog plus
:func:`core_sources`, with :data:`CORE_LINT_WAIVERS` added to the Verilator arguments::

    verilog = toolchain.emit_verilog(top, "top", path)
    handle = toolchain.build([*core_sources(), verilog], "top", extra_args=CORE_LINT_WAIVERS)

The core is configured with the CORE-V PULP extensions (``COREV_PULP = 1``: SIMD dot products,
post-increment loads and stores, MAC, bit manipulation; the cluster interface with ``cv.elw``
is off, ``COREV_CLUSTER = 0``, because the event unit stalls a core by withholding the grant of
a load instead), no FPU, and ``perf_counters`` programmable performance counters beside
``mcycle`` and ``minstret``. All counters are inhibited after reset; ``sw/runtime/crt0.S``
enables them.

Its two OBI ports map one to one onto :class:`~cluster_integration.protocols.TcdmSignature`:
OBI's ``rvalid`` is ``r_valid``, ``data_we_o`` is already active-high write, ``data_addr_o`` is
a byte address (word-aligned for word accesses, with ``be`` selecting bytes) and
``data_wdata_o`` is already shifted onto the byte lanes of ``addr & ~3``. The instruction port
only reads: its ``we``, ``be`` and ``wdata`` are tied to 0, 0xF and 0.
"""

from pathlib import Path

from amaranth import ClockSignal, Const, Module, ResetSignal, Signal
from amaranth.hdl import Instance
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .protocols import TcdmSignature

__all__ = ["Cv32e40p", "core_sources", "core_include_dirs", "CORE_LINT_WAIVERS", "CLOCK_GATE",
           "TOP_MODULE", "MAX_PERF_COUNTERS"]

TOP_MODULE = "cv32e40p_top"

#: The pass-through simulation clock gate that replaces the package's latch-based one.
CLOCK_GATE = Path(__file__).resolve().parent / "sv" / "cv32e40p_clock_gate.sv"

#: Verilator warnings the vendor RTL raises with COREV_PULP = 1 and FPU = 0 (docs/toolchain.md,
#: section 6.3: 27 WIDTHEXPAND, 28 WIDTHTRUNC, 7 CASEINCOMPLETE, 2 UNOPTFLAT). None of them is a
#: defect: implicit extension/truncation, unique-case style decoders and combinational paths
#: through the prefetch buffer and controller that Verilator merely schedules less well. The
#: COMBDLY of the latch clock gate is gone with :data:`CLOCK_GATE`.
CORE_LINT_WAIVERS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                     "-Wno-UNOPTFLAT")

#: ``mhpmcounter3`` .. ``mhpmcounter31``.
MAX_PERF_COUNTERS = 29

# Files of the manifest that are not part of a simulation build: the tracer needs the
# tracer package and a testbench wrapper; the latch clock gate is replaced by CLOCK_GATE.
_DROPPED = ("cv32e40p_tb_wrapper.sv", "cv32e40p_tracer_pkg.sv", "cv32e40p_sim_clock_gate.sv")


def _package_root() -> Path:
    import pythondata_cpu_cv32e40p

    return Path(pythondata_cpu_cv32e40p.data_location)


def _manifest() -> tuple[list[Path], list[Path]]:
    """(files, include directories) of the package's ``cv32e40p_manifest.flist``."""
    root = _package_root()
    rtl = str(root / "rtl")
    files, includes = [], []
    for line in (root / "cv32e40p_manifest.flist").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        line = line.replace("${DESIGN_RTL_DIR}", rtl)
        if line.startswith("+incdir+"):
            includes.append(Path(line.removeprefix("+incdir+")).resolve())
        else:
            files.append(Path(line).resolve())
    return files, includes


def core_sources() -> list[Path]:
    """The SystemVerilog files of ``cv32e40p_top``, packages first, for a simulation build.

    That is the package manifest without the testbench wrapper, the tracer package and the
    latch clock gate (28 files: 3 packages, 24 units, ``cv32e40p_top``), plus the pass-through
    :data:`CLOCK_GATE`.
    """
    files, _includes = _manifest()
    kept = [f for f in files if f.name not in _DROPPED]
    missing = [str(f) for f in kept if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"pythondata-cpu-cv32e40p is missing {missing}")
    return [*kept, CLOCK_GATE]


def core_include_dirs() -> list[Path]:
    """Include directories named by the manifest (the core files include nothing today)."""
    return [d for d in _manifest()[1] if d.is_dir()]


class Cv32e40p(wiring.Component):
    """One CV32E40P core (``cv32e40p_top``) with its OBI ports as TCDM master ports.

    Parameters
    ----------
    hart_id:
        Value of ``mhartid``; the runtime takes the core id from its low 5 bits.
    boot_address:
        Where the core starts after reset (``ClusterConfig.boot_address``); word-aligned.
    trap_vector:
        ``mtvec`` base after reset (``ClusterConfig.trap_vector``), used in vectored mode: traps
        enter at the base, interrupt ``i`` at base + 4i. 256-byte aligned.
    perf_counters:
        Programmable performance counters ``mhpmcounter3..`` (0..29).
    domain:
        Clock domain of the core; its reset is the domain's, inverted to ``rst_ni``.

    Members
    -------
    instr: ``Out(TcdmSignature(data_width=32))``
        Instruction fetch port (reads only).
    data: ``Out(TcdmSignature(data_width=32))``
        Data port: byte address, active-high ``we``, lane-shifted ``wdata``.
    irq: ``In(32)``
        Interrupt lines (machine software/timer/external and 16 fast ones); tie to 0 when
        unused.
    fetch_enable: ``In(1)``
        The core leaves reset and starts fetching once this has been 1 (sticky in the core).
    sleeping: ``Out(1)``
        ``core_sleep_o``: the core waits in WFI (or has not been enabled yet).
    """

    instr: Out(TcdmSignature(data_width=32))
    data: Out(TcdmSignature(data_width=32))
    irq: In(32)
    fetch_enable: In(1)
    sleeping: Out(1)

    def __init__(self, *, boot_address, trap_vector, hart_id=0, perf_counters=1,
                 domain="sync"):
        for name, value in (("hart_id", hart_id), ("boot_address", boot_address),
                            ("trap_vector", trap_vector)):
            if not isinstance(value, int) or not 0 <= value < 1 << 32:
                raise ValueError(f"{name} must be an integer in [0, 2**32), not {value!r}")
        if boot_address % 4:
            raise ValueError(f"boot_address must be word-aligned, not {boot_address:#x}")
        if trap_vector % 256:
            raise ValueError(f"trap_vector must be 256-byte aligned, not {trap_vector:#x}")
        if not isinstance(perf_counters, int) or not 0 <= perf_counters <= MAX_PERF_COUNTERS:
            raise ValueError(f"perf_counters must be an integer in [0, {MAX_PERF_COUNTERS}], "
                             f"not {perf_counters!r}")
        self._hart_id = hart_id
        self._boot_address = boot_address
        self._trap_vector = trap_vector
        self._perf_counters = perf_counters
        self._domain = domain
        super().__init__()

    @property
    def hart_id(self):
        return self._hart_id

    @property
    def boot_address(self):
        return self._boot_address

    @property
    def trap_vector(self):
        return self._trap_vector

    @property
    def perf_counters(self):
        return self._perf_counters

    def elaborate(self, platform):
        m = Module()
        unused = {name: Signal(width, name=f"unused_{name}")
                  for name, width in (("irq_ack", 1), ("irq_id", 5), ("debug_havereset", 1),
                                      ("debug_running", 1), ("debug_halted", 1))}
        m.submodules.core = Instance(
            TOP_MODULE,
            p_COREV_PULP=1,
            p_COREV_CLUSTER=0,
            p_FPU=0,
            p_FPU_ADDMUL_LAT=0,
            p_FPU_OTHERS_LAT=0,
            p_ZFINX=0,
            p_NUM_MHPMCOUNTERS=self._perf_counters,
            i_clk_i=ClockSignal(self._domain),
            i_rst_ni=~ResetSignal(self._domain),
            i_pulp_clock_en_i=Const(1, 1),  # only used with COREV_CLUSTER = 1
            i_scan_cg_en_i=Const(0, 1),
            i_boot_addr_i=Const(self._boot_address, 32),
            i_mtvec_addr_i=Const(self._trap_vector, 32),
            # No debug module: debug_req_i is 0, so the debug addresses are never used.
            i_dm_halt_addr_i=Const(self._trap_vector, 32),
            i_hart_id_i=Const(self._hart_id, 32),
            i_dm_exception_addr_i=Const(self._trap_vector, 32),
            o_instr_req_o=self.instr.req,
            i_instr_gnt_i=self.instr.gnt,
            i_instr_rvalid_i=self.instr.r_valid,
            o_instr_addr_o=self.instr.addr,
            i_instr_rdata_i=self.instr.r_data,
            o_data_req_o=self.data.req,
            i_data_gnt_i=self.data.gnt,
            i_data_rvalid_i=self.data.r_valid,
            o_data_we_o=self.data.we,
            o_data_be_o=self.data.be,
            o_data_addr_o=self.data.addr,
            o_data_wdata_o=self.data.wdata,
            i_data_rdata_i=self.data.r_data,
            i_irq_i=self.irq,
            o_irq_ack_o=unused["irq_ack"],
            o_irq_id_o=unused["irq_id"],
            i_debug_req_i=Const(0, 1),
            o_debug_havereset_o=unused["debug_havereset"],
            o_debug_running_o=unused["debug_running"],
            o_debug_halted_o=unused["debug_halted"],
            i_fetch_enable_i=self.fetch_enable,
            o_core_sleep_o=self.sleeping,
        )
        m.d.comb += [self.instr.we.eq(0), self.instr.be.eq(0xF), self.instr.wdata.eq(0)]
        return m
