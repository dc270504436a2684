"""Where an alignment's permutation travels: the safetensors metadata key of the merged model.

The element itself is serialized by `GroupElement.to_json` / `GroupElement.from_json`.
"""
METADATA_KEY = "weightspace.align.permutation"
