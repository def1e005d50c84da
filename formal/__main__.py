"""``make formal``: run the properties, print the summary table and the FORMAL line."""

import sys
from concurrent.futures import ThreadPoolExecutor

from formal.properties import PROPERTIES
from formal.run import passed, run, summary_line, summary_table
from formal.solver import ToolError
from ita import cli

_NAMES = [p.name for p in PROPERTIES]
KEYS = (
    cli.list_key("ONLY", _NAMES, _NAMES, help="properties to run"),
    cli.flag_key("FAST", help="only the properties that make test runs"),
    cli.int_key("DEPTH", 0, minimum=0, help="BMC and cover depth (0: each property's own)"),
    cli.int_key("JOBS", 1, minimum=1, help="properties checked in parallel"),
)
USAGE = cli.usage("make formal [ONLY=a,b] [FAST=1] [DEPTH=n] [JOBS=n]", KEYS,
                  note="properties: " + ", ".join(_NAMES))


def _command(argv):
    options = cli.parse(argv, KEYS)
    chosen = [p for p in PROPERTIES if p.name in options["ONLY"]
              and (p.fast or not options["FAST"])]
    with ThreadPoolExecutor(options["JOBS"]) as pool:
        verdicts = list(pool.map(lambda p: run(p, options["DEPTH"] or None), chosen))
    print(summary_table(verdicts))
    print(summary_line(verdicts))
    return 0 if passed(verdicts) else 1


def main(argv=None):
    return cli.main("formal", _command, argv, usage_text=USAGE, failures=(ToolError,))


if __name__ == "__main__":
    sys.exit(main())
