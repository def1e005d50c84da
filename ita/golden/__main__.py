"""Command line: ``python -m ita.golden --S 128 --E 128 ... --seed 7 --out DIR``.

Also accepts the Makefile's ``KEY=VALUE`` form (``S=128 ACT=relu SEED=3 OUT=dir``).
"""

import argparse
import sys
import time

from ita.config import ITAConfig

from .arith import ACTIVATIONS, AccumulatorOverflowError
from .vectors import LayerShape, generate, write

# Makefile variable -> command-line option (None: a boolean switch taking 0 or 1).
MAKE_KEYS = {"S": "--S", "E": "--E", "P": "--P", "F": "--F", "H": "--H", "N": "--N",
             "M": "--M", "ACT": "--activation", "SEED": "--seed", "OUT": "--out",
             "VALID_KEYS": "--valid-keys", "BIAS": None, "CAUSAL": None}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _translate_make_args(argv):
    """Turn ``KEY=VALUE`` words into options; raise ValueError on unknown keys."""
    out = []
    for word in argv:
        if "=" not in word or word.startswith("-"):
            out.append(word)
            continue
        key, value = word.split("=", 1)
        if key not in MAKE_KEYS:
            raise ValueError(f"unknown variable {key}; known: {', '.join(MAKE_KEYS)}")
        if key in ("BIAS", "CAUSAL"):
            if value not in ("0", "1"):
                raise ValueError(f"{key} must be 0 or 1, got {value!r}")
            if (key == "BIAS") == (value == "0"):
                out.append("--no-bias" if key == "BIAS" else "--causal")
        else:
            out += [MAKE_KEYS[key], value]
    return out


def build_parser():
    p = _Parser(prog="python -m ita.golden",
                description="Write golden test vectors (vectors.npz + manifest.json).")
    for name, default, what in (("S", 64, "sequence length"), ("E", 64, "embedding size"),
                                ("P", 64, "projection (head) size"),
                                ("F", 64, "feed-forward hidden size"), ("H", 1, "heads")):
        p.add_argument(f"--{name}", type=int, default=default, help=f"{what} (default {default})")
    p.add_argument("--activation", choices=ACTIVATIONS, default="gelu")
    p.add_argument("--no-bias", action="store_true", help="all biases zero")
    p.add_argument("--causal", action="store_true", help="causal attention mask")
    p.add_argument("--valid-keys", type=int, default=None,
                   help="only the first VALID_KEYS keys take part in the softmax")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--N", type=int, default=16, help="engine dot-product units")
    p.add_argument("--M", type=int, default=64, help="engine dot length / tile edge")
    p.add_argument("--out", default=None,
                   help="output directory (default build/vectors/<shape>_seed<seed>)")
    return p


def main(argv=None):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(_translate_make_args(argv))
        config = ITAConfig(N=args.N, M=args.M)
        shape = LayerShape(S=args.S, E=args.E, P=args.P, F=args.F, H=args.H,
                           activation=args.activation, bias=not args.no_bias,
                           causal=args.causal, valid_keys=args.valid_keys)
        shape.validate(config)
        out = args.out or (f"build/vectors/S{args.S}_E{args.E}_P{args.P}_F{args.F}_H{args.H}_"
                           f"{args.activation}{'_nobias' if args.no_bias else ''}"
                           f"{'_causal' if args.causal else ''}_seed{args.seed}")
        start = time.perf_counter()
        vectors = generate(shape, args.seed, config)
        npz, manifest = write(vectors, out, shape=shape, seed=args.seed, config=config)
    except (ValueError, AccumulatorOverflowError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"wrote {npz} and {manifest} ({time.perf_counter() - start:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
