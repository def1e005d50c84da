"""Fast C++ Verilator harness for pure-software runs on the cluster (see :mod:`hw.harness.run`)."""
