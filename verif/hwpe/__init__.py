"""HWPE-level verification: the generated register model and (later) the HWPE testbench."""
