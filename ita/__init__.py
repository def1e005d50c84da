"""ITA-class int8 attention engine: configuration, golden model and Amaranth RTL."""

from .config import DEFAULT_CONFIG, ITAConfig

__all__ = ["ITAConfig", "DEFAULT_CONFIG"]
