"""``make fpga``: the command line of the FPGA flow (:mod:`hw.fpga`) and the board build
(:mod:`hw.board`), kept apart from both so that the board build can use the flow's library
without an import cycle."""

import os
import sys

from hw import board
from hw.fpga import BOARDS, FAMILIES, TOPS, run_core
from hw.verilog import ARRAY_KEYS, config_key, refused, resolve_config
from ita import cli
from ita.cli import UsageError

__all__ = ["KEYS", "USAGE", "main"]

KEYS = (cli.choice_key("TOP", "ita", TOPS, help="the design (board: the ULX3S self-test)"),
        config_key("small"),
        cli.choice_key("FAMILY", "ecp5", FAMILIES, help="FPGA family to synthesise for"),
        *ARRAY_KEYS,
        cli.text_key("DEVICE", "auto", expect="auto or a device of the family",
                     help="auto: the smallest that fits"),
        cli.choice_key("PNR", "auto", ("auto", "0", "1"),
                       help="place and route (auto: for ECP5 when a device fits)"),
        cli.int_key("FREQ", 100, minimum=1, help="clock constraint of place and route, MHz"),
        cli.choice_key("BOARD", BOARDS[0], BOARDS, help="board of TOP=board"))
USAGE = cli.usage("make fpga [KEY=VALUE ...]", KEYS)


def main(argv=None):
    return cli.main("fpga", _command, argv, usage_text=USAGE)


def _command(words):
    options = cli.parse(words, KEYS)
    resolve_config(options)
    if options["TOP"] == "board":
        if options["FAMILY"] != "ecp5" or options["DEVICE"] != "auto":
            raise UsageError("TOP=board builds for the board's own ECP5 device; "
                             "leave FAMILY and DEVICE unset")
        runner = board.main
    else:
        runner = run_core
    try:
        line = runner(options)
    except UsageError:
        raise
    except ValueError as error:  # parameters the RTL refuses
        raise refused(options, error) from None
    except (RuntimeError, FileNotFoundError) as error:
        print(f"fpga: error: {error}", file=sys.stderr)
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
