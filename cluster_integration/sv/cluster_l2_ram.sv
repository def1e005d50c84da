// L2 storage of the cluster (cluster_integration/l2.py): 32-bit words, FETCH_PORTS read-only
// instruction ports, one 32-bit read/write data port with byte enables (the cores) and one
// DMA_WORDS-word read/write port (the DMA), all answering in the cycle after the request.
// A DMA access covers DMA_WORDS consecutive words from any word address (lane 0 at the
// address); its byte enables select the bytes written. When both write ports hit one byte in
// the same cycle, the DMA's write lands.
//
// Hand-written rather than an Amaranth Memory: Amaranth emits an initialiser line per word
// (256 Ki lines for 1 MiB), which slows conversion and Verilation; this array has none, and
// testbenches load programs through VPI (cocotb: dut.l2.ram.mem[i]) or, without VPI, with the
// +L2_HEX=<file> plusarg: a $readmemh file whose word addresses count from the start of L2
// (the C++ harness, hw/harness/).

module cluster_l2_ram #(
    parameter int ADDR_BITS   = 18,  // words = 2**ADDR_BITS
    parameter int FETCH_PORTS = 8,
    parameter int DMA_WORDS   = 4
) (
    input  logic                             clk_i,
    input  logic [          FETCH_PORTS-1:0] fetch_req_i,
    input  logic [FETCH_PORTS*ADDR_BITS-1:0] fetch_addr_i,
    output logic [       FETCH_PORTS*32-1:0] fetch_rdata_o,
    input  logic                             data_req_i,
    input  logic                             data_we_i,
    input  logic [                      3:0] data_be_i,
    input  logic [            ADDR_BITS-1:0] data_addr_i,
    input  logic [                     31:0] data_wdata_i,
    output logic [                     31:0] data_rdata_o,
    input  logic                             dma_req_i,
    input  logic                             dma_we_i,
    input  logic [          4*DMA_WORDS-1:0] dma_be_i,
    input  logic [            ADDR_BITS-1:0] dma_addr_i,
    input  logic [         32*DMA_WORDS-1:0] dma_wdata_i,
    output logic [         32*DMA_WORDS-1:0] dma_rdata_o
);
  logic [31:0] mem[1 << ADDR_BITS];

`ifndef SYNTHESIS
  // Backdoor load for simulators without VPI; does nothing unless the plusarg is given.
  initial begin : load_l2_hex
    string l2_hex;
    if ($value$plusargs("L2_HEX=%s", l2_hex)) $readmemh(l2_hex, mem);
  end
`endif

  always_ff @(posedge clk_i) begin
    for (int p = 0; p < FETCH_PORTS; p++) begin
      if (fetch_req_i[p]) fetch_rdata_o[32*p+:32] <= mem[fetch_addr_i[ADDR_BITS*p+:ADDR_BITS]];
    end
    if (data_req_i) begin
      if (data_we_i) begin
        for (int i = 0; i < 4; i++) if (data_be_i[i]) mem[data_addr_i][8*i+:8] <= data_wdata_i[8*i+:8];
      end else begin
        data_rdata_o <= mem[data_addr_i];
      end
    end
    if (dma_req_i) begin
      for (int w = 0; w < DMA_WORDS; w++) begin
        if (dma_we_i) begin
          for (int i = 0; i < 4; i++)
            if (dma_be_i[4*w+i])
              mem[dma_addr_i+ADDR_BITS'(w)][8*i+:8] <= dma_wdata_i[32*w+8*i+:8];
        end else begin
          dma_rdata_o[32*w+:32] <= mem[dma_addr_i+ADDR_BITS'(w)];
        end
      end
    end
  end
endmodule
