"""The layer compiler: one Transformer encoder layer -> a static schedule for the cluster.

Input: an :class:`~ita.golden.encoder.EncoderShape`, its
:class:`~ita.golden.encoder.EncoderParams`, the input ``x`` and a :class:`ClusterSpec` (L1 and
L2 sizes, cores, engine). Output (:func:`compile_layer`): a :class:`Program` holding

* the schedule: phases of DMA transfers, ITA jobs and core kernels, with the tile sizes and
  every L1 buffer's offset decided from the L1 size (:mod:`ita.deploy.plan`);
* the generated C of that schedule and the L2 memory image (weights laid out the way the
  engine and the kernels read them) with its manifest (:mod:`ita.deploy.emit`).

Why here, in ``ita/``: the compiler is a host-side Python tool whose inputs are the golden
model's types (shapes, parameters, constants) and whose correctness is stated against
``ita.golden.encoder``; keeping it beside the golden model keeps the layering of the project
(nothing in ``ita`` imports the cluster or the testbenches). Cluster facts it needs (memory
sizes, addresses, core count) come in as a :class:`ClusterSpec` that the caller builds
(``verif/cluster/encoder.py`` from ``cluster_integration.memory_map``); the C it writes is
compiled by ``sw/build.py`` against ``sw/runtime`` and ``sw/kernels``.
"""

from .emit import Program, compile_layer
from .plan import ClusterSpec, CompileError, Schedule, layer_macs, plan_layer

__all__ = ["ClusterSpec", "CompileError", "Schedule", "Program", "compile_layer", "plan_layer",
           "layer_macs"]
