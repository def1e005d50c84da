"""The self-checking harness of compiled programs (:mod:`verif.deploy.harness`).

The compiler (``ita.deploy``) writes programs that know nothing of inputs or expected
results; this package gives one its input, the golden model's results and the C that
compares them, so that a run on the cluster checks itself; :mod:`~verif.deploy.execute` runs
a plan in numpy instead, against the same results, without the cluster.
"""

from .bert import expected_bert_tensors, self_checking_bert
from .decoder import expected_decoder_tensors, self_checking_decoder
from .execute import ExecutionError, check_bert_plan, check_plan, execute
from .harness import C_DIR, C_SOURCES, SelfChecking, expected_tensors, self_checking

__all__ = ["C_DIR", "C_SOURCES", "SelfChecking", "expected_tensors", "self_checking",
           "expected_decoder_tensors", "self_checking_decoder", "expected_bert_tensors",
           "self_checking_bert", "ExecutionError", "check_plan", "check_bert_plan", "execute"]
