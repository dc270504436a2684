"""Model merging in a common frame: soups, SLERP, task arithmetic, TIES, DARE, model stock; ZipIt! and CCA.

    import weightspace as ws
    merged = ws.merge.merge_models([sd_a, sd_b], "linear", spec=spec, align="weight").state_dict
    tuned = ws.merge.merge_models(finetunes, "ties", base=sd_base, density=0.2).state_dict
    ws.merge.merge_files(["a/", "b/"], "out/", "slerp", t=0.5)   # streaming, safetensors in and out
    zipped = ws.merge.zip_models([sd_a, sd_b], model, batches, method="zipit", depth=2)  # or method="cca"

Each method is a per-entry kernel (`weightspace.merge.methods`); `merge_models` merges
state dicts in memory, optionally after permuting every model onto an anchor with
weight, activation or STE matching and followed by BatchNorm reset or REPAIR (all from
`weightspace.align`); `merge_files` streams the same kernels over safetensors
checkpoints one entry at a time. Only floating-point entries are merged; integer
buffers (num_batches_tracked) come from the anchor, model 0. `zip_models` merges models
from different inits (and tasks) by their features instead: ZipIt! zipping or CCA Merge,
one merge/unmerge matrix pair per group (`GroupMerge`) applied on the spec's axes,
optionally stopping at a depth (partial zipping: a wider, multi-head model).
"""
from .api import GreedySoup, MergedModel, greedy_soup, merge_models
from .feature_maps import GroupMerge
from .stream import StreamReport, merge_files
from .zip import ZippedModel, zip_models

__all__ = [
    "GreedySoup", "GroupMerge", "MergedModel", "StreamReport", "ZippedModel", "greedy_soup", "merge_files",
    "merge_models", "zip_models",
]
