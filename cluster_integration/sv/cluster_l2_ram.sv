// The cluster's behavioural memories: cluster_l2_ram (below) and cluster_l3_ram (at the end,
// in this file so that every build that compiles L2 has L3 too).
//
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

// L3 storage of the cluster (cluster_integration/l3.py): a sparse array of 32-bit words behind
// the modelled off-chip link, with one DMA_WORDS-word read/write port that grants at once and
// answers in the cycle after the request. An access covers DMA_WORDS consecutive words from
// any word address (lane 0 at the address); byte enables select the bytes written.
//
// The words live in an associative array, so only the words ever written or loaded take
// simulator memory: 2**ADDR_BITS words of address space (64 MiB and more) cost nothing up
// front, and a word never written reads as 0. Contents load before the run with the
// +L3_HEX=<file> plusarg: lines of "<word address> <word>" in hex, the word address counting
// from the start of L3.

module cluster_l3_ram #(
    parameter int ADDR_BITS = 24,  // words = 2**ADDR_BITS
    parameter int DMA_WORDS = 4
) (
    input  logic                    clk_i,
    input  logic                    dma_req_i,
    input  logic                    dma_we_i,
    input  logic [ 4*DMA_WORDS-1:0] dma_be_i,
    input  logic [   ADDR_BITS-1:0] dma_addr_i,
    input  logic [32*DMA_WORDS-1:0] dma_wdata_i,
    output logic [32*DMA_WORDS-1:0] dma_rdata_o
);
  logic [31:0] mem[logic [ADDR_BITS-1:0]];

`ifndef SYNTHESIS
  initial begin : load_l3_hex
    string l3_hex;
    int fd;
    logic [31:0] address, word;
    if ($value$plusargs("L3_HEX=%s", l3_hex)) begin
      fd = $fopen(l3_hex, "r");
      if (fd == 0) $fatal(1, "cluster_l3_ram: cannot open %s", l3_hex);
      while ($fscanf(fd, "%h %h\n", address, word) == 2) mem[address[ADDR_BITS-1:0]] = word;
      $fclose(fd);
    end
  end
`endif

  // Blocking writes into the array (one process owns it, and only it reads the array after
  // the initial load); the read data is registered.
  /* verilator lint_off BLKSEQ */
  always @(posedge clk_i) begin
    if (dma_req_i) begin
      for (int w = 0; w < DMA_WORDS; w++) begin
        logic [ADDR_BITS-1:0] word_address;
        logic [31:0] merged;
        word_address = dma_addr_i + ADDR_BITS'(w);
        if (dma_we_i) begin
          merged = mem.exists(word_address) ? mem[word_address] : 32'h0;
          for (int i = 0; i < 4; i++) if (dma_be_i[4*w+i]) merged[8*i+:8] = dma_wdata_i[32*w+8*i+:8];
          if (dma_be_i[4*w+:4] != 4'h0) mem[word_address] = merged;
        end else begin
          dma_rdata_o[32*w+:32] <= mem.exists(word_address) ? mem[word_address] : 32'h0;
        end
      end
    end
  end
  /* verilator lint_on BLKSEQ */
endmodule
