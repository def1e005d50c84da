"""The ``make verilog`` outputs elaborate in a second front end, slang (issue 19): the
cluster with the CV32E40P SystemVerilog and our own ``sv/`` files, and the engine and HWPE.
The default warning set must stay silent; anything slang reports is a bug to fix."""

import pytest

from hw import icarus, slang
from hw.configs import get as get_config

CONFIG = "small"


@pytest.mark.parametrize("top", ["cluster", "ita_hwpe", "ita"])
def test_elaborates_without_diagnostics(top):
    output = icarus.make_verilog(top, CONFIG)
    result = slang.elaborate(output.filelist, top)
    assert result.ok, "\n".join(result.errors)
    assert result.warnings == []
    if top == "cluster":
        cores = get_config(CONFIG).cores
        assert result.instances.get("cv32e40p_core") == cores
        ours = {src.stem for src in output.sources if src.parent.name == "sv"}
        assert ours <= set(result.instances), "our SystemVerilog is not instantiated"


def test_a_real_error_is_reported(tmp_path):
    """The check is not vacuous: an undeclared identifier is an error."""
    (tmp_path / "bad.sv").write_text("module bad(input a, output b); assign b = a & c; "
                                     "endmodule\n")
    (tmp_path / "bad.f").write_text("bad.sv\n")
    result = slang.elaborate(tmp_path / "bad.f", "bad")
    assert not result.ok and any("'c'" in e for e in result.errors)
