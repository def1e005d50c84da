"""Command line: ``python -m ita.golden [S=128 E=128 ... ACT=relu SEED=7 OUT=DIR]``.

``make vectors`` runs it; ``HELP=1`` lists the keys. Writes ``vectors.npz`` and
``manifest.json`` (default directory ``build/vectors/<shape>_seed<seed>``).
"""

import sys
import time

from ita import cli
from ita.config import ITAConfig

from .arith import ACTIVATIONS, AccumulatorOverflowError
from .vectors import LayerShape, generate, write

KEYS = (*(cli.int_key(name, 64, minimum=1, help=what) for name, what in (
            ("S", "sequence length"), ("E", "embedding size"), ("P", "projection (head) size"),
            ("F", "feed-forward hidden size"))),
        cli.int_key("H", 1, minimum=1, help="heads"),
        cli.choice_key("ACT", "gelu", ACTIVATIONS, help="activation of F1"),
        cli.flag_key("BIAS", True, help="0: all biases zero"),
        cli.flag_key("CAUSAL", help="causal attention mask"),
        cli.int_key("VALID_KEYS", 0, minimum=0,
                    help="only the first VALID_KEYS keys take part in the softmax (0: all S)"),
        cli.int_key("LOGIT_FRAC", 0, minimum=0, maximum=ITAConfig().logit_frac_max,
                    help="softmax logit step ln 2 / 2**LOGIT_FRAC (0: the reference's)"),
        cli.int_key("SEED", 0, minimum=0, help="random seed"),
        *cli.array_keys(),
        cli.path_key("OUT", None, help="output directory (default build/vectors/<shape>_seed<n>)"))
USAGE = cli.usage("make vectors [KEY=VALUE ...]", KEYS)


def _command(argv):
    options = cli.parse(argv, KEYS)
    try:
        config = ITAConfig(N=options["ARRAY_N"], M=options["ARRAY_M"])
    except ValueError as exc:
        raise cli.UsageError(f"ARRAY_N={options['ARRAY_N']} ARRAY_M={options['ARRAY_M']}: "
                             f"{exc}") from None
    shape = LayerShape(S=options["S"], E=options["E"], P=options["P"], F=options["F"],
                       H=options["H"], activation=options["ACT"], bias=options["BIAS"],
                       causal=options["CAUSAL"], valid_keys=options["VALID_KEYS"] or None,
                       logit_frac=options["LOGIT_FRAC"])
    shape.validate(config)
    seed = options["SEED"]
    out = options["OUT"] or (
        f"build/vectors/S{shape.S}_E{shape.E}_P{shape.P}_F{shape.F}_H{shape.H}_"
        f"{shape.activation}{'' if shape.bias else '_nobias'}"
        f"{'_causal' if shape.causal else ''}"
        f"{f'_lf{shape.logit_frac}' if shape.logit_frac else ''}_seed{seed}")
    start = time.perf_counter()
    vectors = generate(shape, seed, config)
    npz, manifest = write(vectors, out, shape=shape, seed=seed, config=config)
    print(f"wrote {npz} and {manifest} ({time.perf_counter() - start:.2f} s)")
    return 0


def main(argv=None):
    return cli.main("vectors", _command, argv, usage_text=USAGE,
                    failures=(ValueError, AccumulatorOverflowError))


if __name__ == "__main__":
    sys.exit(main())
