"""Formal properties of the cluster's shared blocks, proved with the pip-installed Yosys.

Each property lives in a harness (:mod:`formal.control`, :mod:`formal.event_unit`) that
wraps the real component with free inputs and states ``Assert``/``Assume``/``Cover`` over
its ports. :mod:`formal.solver` turns a harness into SMT-LIB with Yosys and runs
``yosys-smtbmc`` (bounded model checking, k-induction, cover); :mod:`formal.properties`
lists every property with its deliberately broken variant; ``python -m formal`` (``make
formal``) runs them all. See ``docs/formal.md``.
"""
