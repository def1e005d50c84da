"""Named hardware configurations for the generators and make targets.

The configurations themselves are defined once, in :mod:`ita.cluster_config`; this module
is the name the ``make verilog``/``make fpga`` tools know them by. ``ARRAY_N=`` and
``ARRAY_M=`` on the command line override the engine size of the chosen configuration.
"""

from ita.cluster_config import CONFIGS, DEFAULT, ClusterConfig, get

__all__ = ["HwConfig", "CONFIGS", "get", "DEFAULT"]

#: A named configuration (the engine and the cluster around it).
HwConfig = ClusterConfig
