// Zero-wait RAM of the single-core test top (verif/tops/core.py): 32-bit words, a read port A
// and a read/write port B with byte enables, both answering in the cycle after the request.
//
// Hand-written rather than an Amaranth Memory: Amaranth emits an initialiser line per word
// (32 Ki lines for L1 alone), which slows conversion and Verilation; this array has none, and
// testbenches load it through VPI (cocotb: dut.<instance>.mem[i]).

module core_tb_ram #(
    parameter int ADDR_BITS = 10  // words = 2**ADDR_BITS
) (
    input  logic                 clk_i,
    input  logic                 a_req_i,
    input  logic [ADDR_BITS-1:0] a_addr_i,
    output logic [         31:0] a_rdata_o,
    input  logic                 b_req_i,
    input  logic                 b_we_i,
    input  logic [          3:0] b_be_i,
    input  logic [ADDR_BITS-1:0] b_addr_i,
    input  logic [         31:0] b_wdata_i,
    output logic [         31:0] b_rdata_o
);
  logic [31:0] mem[1 << ADDR_BITS];

  always_ff @(posedge clk_i) begin
    if (a_req_i) a_rdata_o <= mem[a_addr_i];
    if (b_req_i) begin
      if (b_we_i) begin
        for (int i = 0; i < 4; i++) if (b_be_i[i]) mem[b_addr_i][8*i+:8] <= b_wdata_i[8*i+:8];
      end else begin
        b_rdata_o <= mem[b_addr_i];
      end
    end
  end
endmodule
