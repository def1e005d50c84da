"""Fast C++ Verilator harnesses: whole programs on the cluster, engine jobs (:mod:`.run`)."""
