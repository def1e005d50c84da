"""The ``icarus`` marker: these tests run the second simulator (slow, like ``verilator``)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "icarus: runs a cocotb model on Icarus Verilog (slow)")
