"""From a module or a bare state dict to a `WeightSpec` (and, traced, a `ParsedModel`)."""
from .api import ParsedModel, parse, parse_model
from .infer import infer_spec
from .roles import Role
from .sites import Site
from .trace import Trace, trace

__all__ = ["ParsedModel", "Role", "Site", "Trace", "infer_spec", "parse", "parse_model", "trace"]
