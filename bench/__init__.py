"""``make bench``: how close the engine runs to its peak, what the HWPE and the cluster achieve
end to end, what the cores' kernels reach, and how fast each simulator flow is.

``python -m bench`` (:mod:`bench.__main__`) runs :mod:`bench.suite`, which only calls the
existing flows (``make sim`` tests, the C++ harnesses) and parses their RESULT lines;
:mod:`bench.report` and :mod:`bench.plots` turn the measurements into ``build/bench/``.
"""
