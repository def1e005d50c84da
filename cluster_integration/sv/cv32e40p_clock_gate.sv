// Pass-through clock gate for simulating CV32E40P (used by cluster_integration.core).
//
// Replaces the package's bhv/cv32e40p_sim_clock_gate.sv, whose latch-based gate makes a derived
// clock and a COMBDLY warning under Verilator. Here clk_o = clk_i: the core's sleep unit can no
// longer stop its own clock, but CV32E40P with COREV_CLUSTER = 0 gates only while asleep after
// WFI (or before fetch_enable_i), where its controller waits in a state that does nothing, so
// behaviour is unchanged; core_sleep_o still reports sleep. Measured: identical results and no
// speed difference (docs/toolchain.md, section 6.4). Not for synthesis: use a technology cell.
//
// A hand-written file rather than Amaranth output: the module name and ports must match the
// instance inside the vendor RTL exactly, and there is nothing to parameterise.

module cv32e40p_clock_gate (
    input  logic clk_i,
    input  logic en_i,
    input  logic scan_cg_en_i,
    output logic clk_o
);
  assign clk_o = clk_i;
  // Not used by a pass-through gate; referenced so that -Wall lint stays quiet.
  logic unused;
  assign unused = en_i ^ scan_cg_en_i;
endmodule
