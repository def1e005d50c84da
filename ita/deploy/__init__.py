"""The deploy compiler: an integer model and a cluster -> a program (C and an L2 image).

Input: an :class:`~ita.deploy.frontend.IntegerModel` (integer weights and constants, no
activations) and a :class:`ClusterSpec`. Output (:func:`compile_model`): a :class:`Program`
holding the generated C, the L2 data image and a manifest naming the input and output slots.
Running it and checking its results is the harness's business (``verif/deploy``).

The stages, one module each:

* :mod:`~ita.deploy.frontend`: the integer model the compiler consumes and its sources;
* :mod:`~ita.deploy.ir`: tensors with their L2 and L1 homes, DMA transfers, ITA jobs,
  kernels, phases, the schedule;
* :mod:`~ita.deploy.lower`: per block type, the block as buffers and ordered operations
  (the Llama decoder layer in :mod:`~ita.deploy.lower_decoder`, a quantised BERT layer in
  :mod:`~ita.deploy.lower_bert`, which registers itself; one chip's share of a layer split
  over several chips in :mod:`~ita.deploy.partition`, the multi-chip partitioner);
* :mod:`~ita.deploy.schedule`: the operations packed into phases, buffer lifetimes;
* :mod:`~ita.deploy.allocate`: L1 ranges and L2 offsets;
* :mod:`~ita.deploy.cost`: the cost model, from measured figures;
* :mod:`~ita.deploy.search`: the cheapest plan that fits;
* :mod:`~ita.deploy.emit`: C, L2 image and manifest;
* :mod:`~ita.deploy.target`: the compiler's view of the cluster.

Why here, in ``ita/``: the compiler is a host-side tool whose inputs are the golden model's
types and whose correctness is stated against ``ita.golden``; nothing in ``ita`` imports the
cluster or the testbenches. The C it writes is compiled by ``sw/build.py`` against
``sw/runtime``, ``sw/kernels`` and the runtime in ``csrc/``.
"""

from . import (
    lower_bert,  # noqa: F401 -- registers the BERT layer's lowering
    partition,  # noqa: F401 -- registers the multi-chip shard's lowering
)
from .emit import Program, compile_model
from .frontend import (
    IntegerBertLayer,
    IntegerEncoderLayer,
    IntegerModel,
    RandomEncoder,
    bert_layer_model,
    bert_model,
    encoder_model,
    layer_macs,
)
from .ir import CompileError, Schedule
from .search import plan
from .target import ClusterSpec

__all__ = ["ClusterSpec", "CompileError", "IntegerBertLayer", "IntegerEncoderLayer",
           "IntegerModel", "Program", "RandomEncoder", "Schedule", "bert_layer_model", "bert_model",
           "compile_model", "encoder_model", "layer_macs", "plan"]
