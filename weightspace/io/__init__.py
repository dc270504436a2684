"""Safe checkpoint input/output: `load` any common layout, `save` safetensors atomically.

Pickles are only ever read with `torch.load(weights_only=True)`; a file that would
run code is refused with UnsafePickleError, naming what it asked for. Check a loaded
state dict against a spec with `spec.check(state_dict, where=path)`.
"""
from .load import load, load_spec
from .save import save

__all__ = ["load", "load_spec", "save"]
