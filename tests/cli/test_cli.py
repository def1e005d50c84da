"""ita.cli: key types and bounds, the parser's errors, the usage text, the error-printing main."""

from pathlib import Path

import pytest

from ita import cli
from ita.config import DEFAULT_CONFIG

KEYS = (cli.int_key("S", 64, minimum=1, maximum=4095, help="sequence length"),
        cli.flag_key("BIAS", True),
        cli.choice_key("ACT", "gelu", ("identity", "gelu", "relu")),
        cli.list_key("ONLY", ("a", "b", "c"), ("a", "b", "c")),
        cli.text_key("APP", None, expect="an app", required=True),
        cli.path_key("OUT", "build/x"),
        cli.SEED)


def test_defaults_and_types():
    options = cli.parse(["APP=hello"], KEYS)
    assert options == {"S": 64, "BIAS": True, "ACT": "gelu", "ONLY": ("a", "b", "c"),
                       "APP": "hello", "OUT": Path("build/x"), "SEED": 1}
    options = cli.parse(["S=4_095", "BIAS=0", "ACT=relu", "ONLY=c,a", "APP=x", "OUT=/tmp/o",
                         "SEED=0"], KEYS)
    assert options["S"] == 4095 and options["BIAS"] is False and options["ACT"] == "relu"
    assert options["ONLY"] == ("a", "c")  # in the declared order
    assert options["OUT"] == Path("/tmp/o") and options["SEED"] == 0


@pytest.mark.parametrize("word, message", [
    ("S=0", "bad value '0' for key S (expected an integer >= 1 and <= 4095)"),
    ("S=4096", "bad value '4096' for key S (expected an integer >= 1 and <= 4095)"),
    ("S=x", "bad value 'x' for key S (expected an integer >= 1 and <= 4095)"),
    ("BIAS=2", "bad value '2' for key BIAS (expected 0 or 1)"),
    ("ACT=swish", "bad value 'swish' for key ACT (expected identity, gelu or relu)"),
    ("ONLY=a,d", "bad value 'a,d' for key ONLY (expected a comma-separated list of a, b or c)"),
    ("ONLY=,", "bad value ',' for key ONLY (expected a comma-separated list of a, b or c)"),
    ("OUT=", "bad value '' for key OUT (expected a path)"),
    ("SEED=-1", "bad value '-1' for key SEED (expected an integer >= 0)"),
])
def test_bad_values_name_the_key_and_what_is_valid(word, message):
    with pytest.raises(cli.UsageError) as info:
        cli.parse(["APP=x", word], KEYS)
    assert str(info.value) == message


@pytest.mark.parametrize("words, message", [
    (["APP=x", "FOO=1"], "unknown key FOO (known: S, BIAS, ACT, ONLY, APP, OUT, SEED)"),
    (["APP=x", "S=1", "S=2"], "key S given twice"),
    (["APP=x", "hello"], "expected KEY=VALUE, got 'hello'"),
    (["APP=x", "s=1"], "expected KEY=VALUE, got 's=1'"),
    ([], "missing APP=<an app>"),
])
def test_command_line_errors(words, message):
    with pytest.raises(cli.UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")
                       + "$"):
        cli.parse(words, KEYS)


def test_where_ends_the_messages():
    with pytest.raises(cli.UsageError, match="unknown key X for test t "):
        cli.parse(["X=1"], (cli.SEED,), where=" for test t")


def test_usage_error_is_a_value_error():
    assert issubclass(cli.UsageError, ValueError)


def test_array_keys_default_to_the_engine_configuration():
    n, m = cli.array_keys()
    assert (n.name, n.default, m.name, m.default) == ("ARRAY_N", DEFAULT_CONFIG.N,
                                                      "ARRAY_M", DEFAULT_CONFIG.M)
    n, m = cli.array_keys(None, what="CONFIG's")
    assert n.default is None and m.default is None and "CONFIG's" in n.help
    assert cli.parse([], (n, m)) == {"ARRAY_N": None, "ARRAY_M": None}


def test_usage_lists_every_key_with_default_and_help():
    text = cli.usage("make x [KEY=VALUE ...]", KEYS)
    lines = text.splitlines()
    assert lines[0] == "usage: make x [KEY=VALUE ...]"
    assert len(lines) == 1 + len(KEYS)
    assert lines[1].split() == ["S=64", "(an", "integer", ">=", "1", "and", "<=", "4095)",
                                "sequence", "length"]
    assert "BIAS=1" in lines[2] and "ONLY=a,b,c" in lines[4] and "APP=<an app>" in lines[5]


def test_main_prints_one_error_line_and_returns_2(capsys):
    def body(words):
        cli.parse(words, KEYS)
        return 0

    assert cli.main("tool", body, ["APP=x", "S=0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("tool: error: bad value '0' for key S "
                            "(expected an integer >= 1 and <= 4095)\n")


def test_main_failures_keep_their_further_lines(capsys):
    def body(words):
        raise RuntimeError("build failed\ncompiler says\nmore")

    assert cli.main("tool", body, [], failures=(RuntimeError,)) == 2
    assert capsys.readouterr().err == "tool: error: build failed\ncompiler says\nmore\n"


def test_main_help_prints_the_usage(capsys):
    def body(words):
        raise AssertionError("HELP=1 must not run the tool")

    for words in (["HELP=1"], ["help"], ["S=3", "--help"]):
        assert cli.main("tool", body, words, usage_text=cli.usage("make x", KEYS)) == 0
        assert capsys.readouterr().out.startswith("usage: make x\n  S=64")
    seen = []
    cli.main("tool", body, ["TEST=a", "HELP=1"], usage_text=lambda rest: seen.append(rest) or "")
    assert seen == [["TEST=a"]]


def test_main_returns_the_body_status():
    assert cli.main("tool", lambda words: len(words), ["A=1", "B=2"]) == 2
    assert cli.main("tool", lambda words: 0, []) == 0


def test_cli_imports_only_the_configuration_from_the_project():
    """Every layer's entry point uses ita.cli, so it may depend on ita.config alone."""
    import ast

    tree = ast.parse(Path(cli.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    project = {name for name in imported
               if name.split(".")[0] in ("ita", "hw", "verif", "bench", "sw",
                                         "cluster_integration")}
    assert project == {"ita.config"}
