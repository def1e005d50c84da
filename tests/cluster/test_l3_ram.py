"""The L3 storage (``cluster_l3_ram``) on Verilator: contents loaded from a ``+L3_HEX`` file
land at their word addresses, sparse addresses far apart included, words never written read
as 0, and a beat's byte enables select the bytes written."""

import subprocess

import pytest

from cluster_integration.l3 import L3_RAM_SOURCE
from hw import toolchain

pytestmark = pytest.mark.verilator

ADDR_BITS, WORDS = 24, 4
BENCH = f"""
module l3_ram_bench;
  logic clk = 1'b0, req = 1'b0, we = 1'b0;
  logic [4*{WORDS}-1:0] be = '0;
  logic [{ADDR_BITS}-1:0] addr = '0;
  logic [32*{WORDS}-1:0] wdata = '0, rdata;
  cluster_l3_ram #(.ADDR_BITS({ADDR_BITS}), .DMA_WORDS({WORDS})) ram (
      .clk_i(clk), .dma_req_i(req), .dma_we_i(we), .dma_be_i(be), .dma_addr_i(addr),
      .dma_wdata_i(wdata), .dma_rdata_o(rdata));
  always #5 clk = ~clk;
  task automatic beat(input logic write, input logic [{ADDR_BITS}-1:0] at,
                      input logic [4*{WORDS}-1:0] bytes, input logic [32*{WORDS}-1:0] data);
    @(negedge clk); req = 1'b1; we = write; addr = at; be = bytes; wdata = data;
    @(negedge clk); req = 1'b0;
  endtask
  initial begin
    beat(1'b0, 'h0, '1, '0);
    $display("read %h", rdata);
    beat(1'b0, 'h0fffff, '1, '0);
    $display("read %h", rdata);
    beat(1'b1, 'h2, 'h0f3, {{32'h0, 32'h0, 32'haabbccdd, 32'h11223344}});
    beat(1'b0, 'h1, '1, '0);
    $display("read %h", rdata);
    $finish;
  end
endmodule
"""
#: A word address past the first 2**20 words: the store must not be a flat array.
FAR = 1 << 20
CONTENTS = {0: 0x10, 1: 0x11, 2: 0x12, 3: 0x13, FAR - 1: 0xFFFF, FAR: FAR, FAR + 1: FAR + 1}


def _beat(words):
    return "".join(f"{w:08x}" for w in reversed(words))


def test_loads_from_file_pages_sparsely_and_writes_bytes(tmp_path):
    bench = tmp_path / "l3_ram_bench.sv"
    bench.write_text(BENCH)
    image = tmp_path / "l3.hex"
    image.write_text("".join(f"{a:x} {w:08x}\n" for a, w in CONTENTS.items()))
    build = subprocess.run(
        ["verilator", "--binary", "-Wall", "-Wno-DECLFILENAME", "-Wno-UNUSEDSIGNAL",
         "-Wno-PROCASSINIT", "-CFLAGS", "-fcoroutines", "--top-module", "l3_ram_bench",
         str(bench), str(L3_RAM_SOURCE)],
        cwd=tmp_path, env=toolchain.verilator_env(), capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(tmp_path / "obj_dir" / "Vl3_ram_bench"), f"+L3_HEX={image}"],
                         capture_output=True, text=True, timeout=60)
    reads = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("read ")]
    assert reads == [
        _beat([0x10, 0x11, 0x12, 0x13]),
        _beat([0xFFFF, FAR, FAR + 1, 0]),                  # 2**20 words apart, and a hole
        _beat([0x11, 0x3344, 0xAABBCCDD, 0]),              # bytes 0-1 of lane 0, all of lane 1
    ], run.stdout
