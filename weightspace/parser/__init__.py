"""From a module or a bare state dict to a `WeightSpec` (and, traced, a `ParsedModel`)."""
from .api import ParsedModel, parse, parse_model
from .infer import infer_spec

__all__ = ["ParsedModel", "infer_spec", "parse", "parse_model"]
