"""Testbench tops: the core and the cluster wrapped with run bookkeeping (stdout buffer, end
of the run, cycle count), shared by the cocotb testbenches and the C++ harness."""
