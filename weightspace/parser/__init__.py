"""From a module or a bare state dict to a `WeightSpec`."""
from .api import parse
from .infer import infer_spec
from .trace import Trace, trace

__all__ = ["Trace", "infer_spec", "parse", "trace"]
