"""weightspace: learning on neural-network weights.

One permutation-symmetry spec (`WeightSpec`) per weight space feeds every part:
parameter graphs, metanetworks, alignment, augmentation and learned optimizers.

    import weightspace as ws
    sd = ws.load("model.safetensors")          # safe loading, any supported format
    spec = ws.parse(model, (x,))               # traced with torch.export, verified
    parsed = ws.parse_model(model, (x,))       # the same, keeping the trace's roles and sites
    spec = ws.infer_spec(sd)                   # bare state dict (MLP/SIREN/conv chains)
    g = spec.random_element(torch.Generator().manual_seed(0))
    sd2 = spec.apply(sd, g)                    # same function, permuted weights

Every error is a `WeightspaceError`; the named subclasses live in `weightspace.errors`.
Subpackages (`ws.align`, `ws.nn`, ...) are imported on first use.
"""
from .errors import WeightspaceError
from .spec import Entry, ExtraAction, Factor, FrozenAxis, Group, GroupElement, WeightSpec

__version__ = "0.1.0"

_LAZY = {
    "load": ("weightspace.io", "load"),
    "save": ("weightspace.io", "save"),
    "load_spec": ("weightspace.io", "load_spec"),
    "parse": ("weightspace.parser", "parse"),
    "parse_model": ("weightspace.parser", "parse_model"),
    "ParsedModel": ("weightspace.parser", "ParsedModel"),
    "infer_spec": ("weightspace.parser", "infer_spec"),
}


_SUBPACKAGES = (
    "align", "augment", "examples", "generate", "graph", "io", "lopt", "merge", "nn", "parser", "spec", "testing",
)


def __getattr__(name):
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"weightspace.{name}")
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'weightspace' has no attribute {name!r}")


__all__ = [
    "Entry",
    "ExtraAction",
    "Factor",
    "FrozenAxis",
    "Group",
    "GroupElement",
    "ParsedModel",
    "WeightSpec",
    "WeightspaceError",
    "infer_spec",
    "load",
    "load_spec",
    "parse",
    "parse_model",
    "save",
]
