"""Fast C++ Verilator harnesses: whole programs on the cluster, engine jobs (:mod:`.run`)."""

from pathlib import Path

#: The signals the cocotb cluster testbench needs public in a ``fast`` build (hw.toolchain).
COCOTB_CLUSTER_VLT = Path(__file__).resolve().parent / "cocotb_cluster.vlt"
