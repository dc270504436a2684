"""Every error weightspace, its zoo and its jobs raise on bad input: one base class,
named subclasses, all in this module (and the parser's named warning).

Each carries the offending file, key or axis in its message so that a user can find
what was wrong without reading a traceback into our internals. An error that replaces
a builtin also subclasses it (`ConfigError` is a `ValueError`), so `except ValueError`
callers keep working. The console script prints any `WeightspaceError` as one line.
"""
from __future__ import annotations


class WeightspaceError(Exception):
    """Base class of every error raised by weightspace on bad input."""


class ConfigError(WeightspaceError, ValueError):
    """An argument or configuration value given to a constructor, function or job is invalid."""


class InputTypeError(WeightspaceError, TypeError):
    """An argument has the wrong type (a list where a tensor is expected, a non-string key, ...)."""


class UnknownNameError(ConfigError, KeyError):
    """A name (example, task family, job, ...) that its registry does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(WeightspaceError, ImportError):
    """An optional package that a feature needs is not installed; the message says how to install it."""


class CheckpointError(WeightspaceError):
    """A checkpoint file or folder could not be read (missing, truncated, corrupt, unknown format)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsafePickleError(CheckpointError):
    """A pickle references globals outside the safe allow-list; it was not executed."""

    def __init__(self, path, globals_found: list[str]):
        self.globals = list(globals_found)
        listed = ", ".join(self.globals) or "(unknown)"
        super().__init__(
            path,
            "refused to unpickle: the file references code that loading would execute "
            f"({listed}). Nothing was run. Re-save it as a plain state dict or safetensors.",
        )


class KeyMismatchError(WeightspaceError):
    """A state dict lacks keys the spec needs, or holds keys the spec does not know."""

    def __init__(self, missing: list[str], unexpected: list[str], where: str = ""):
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        parts = []
        if self.missing:
            parts.append(f"missing keys {self.missing[:8]}{' …' if len(self.missing) > 8 else ''}")
        if self.unexpected:
            parts.append(
                f"unexpected keys {self.unexpected[:8]}{' …' if len(self.unexpected) > 8 else ''}"
            )
        prefix = f"{where}: " if where else ""
        super().__init__(prefix + "; ".join(parts))


class ShapeMismatchError(WeightspaceError):
    """A tensor's shape differs from the shape the spec records for its key."""

    def __init__(self, key: str, expected, got, where: str = ""):
        self.key = key
        self.expected = tuple(expected)
        self.got = tuple(got)
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{key!r} has shape {self.got}, the spec expects {self.expected}")


class SpecError(WeightspaceError, ValueError):
    """A spec is malformed or does not fit the object it is used with."""


class TraceError(WeightspaceError):
    """A module could not be traced with torch.export."""


class UnknownOpError(WeightspaceError):
    """strict parsing met an op without a symmetry rule."""


class ShapeGuardWarning(UserWarning):
    """torch.export recorded conditions on input shapes (a branch on `x.shape`): the traced
    graph, and so the spec, holds only for input shapes that meet them."""


class InferenceError(WeightspaceError):
    """A spec could not be inferred from a bare state dict (ambiguous or unsupported structure)."""


class SpecVerificationError(WeightspaceError):
    """Applying a group element of the spec changed the model's outputs."""

    def __init__(self, group: str, max_diff: float, tol: float, mode: str):
        self.group = group
        self.max_diff = max_diff
        self.tol = tol
        self.mode = mode
        super().__init__(
            f"group {group!r} is not a symmetry in {mode} mode: outputs moved by "
            f"{max_diff:.3g} (tolerance {tol:.3g})"
        )


class AlignError(WeightspaceError):
    """Alignment or merging could not run on the given models, spec or data."""


class ArchitectureMismatchError(AlignError):
    """Two state dicts to align do not describe the same architecture."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"models A and B differ first at {key!r}: {reason}")


class GraphError(WeightspaceError):
    """A parameter graph does not fit the spec, structure or values it is used with."""


class GMNError(WeightspaceError):
    """A graph batch the metanetwork cannot read (unknown edge width, missing graph meta, ...)."""


class LoptError(WeightspaceError, ValueError):
    """A learned rule or meta-network was called with inputs it cannot use (features, graphs, states)."""


class ZooError(WeightspaceError):
    """A zoo directory, build request or import source is invalid."""


class ChecksumError(ZooError):
    """A shard's bytes do not match the checksum recorded when it was written."""

    def __init__(self, path, expected: str, got: str):
        self.path = str(path)
        self.expected = expected
        self.got = got
        super().__init__(
            f"{self.path}: checksum mismatch (recorded sha256 {expected[:16]}…, file has {got[:16]}…); "
            "the shard is corrupt: delete it and re-run the build to regenerate it"
        )


class ImportFormatError(ZooError):
    """An import source does not have the layout its importer expects."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")


# paths leaving their folder, busy builds, outputs over inputs


class OutsideFolderError(CheckpointError):
    """A file names a path (absolute, `..`, or a symlink) that leaves the folder it must stay in."""


class FolderLockedError(ZooError):
    """Another process holds the build lock of a folder (two builders would mix their shards)."""

    def __init__(self, path, holder: str):
        self.path = str(path)
        self.holder = holder
        super().__init__(
            f"{self.path}: another build ({holder}) is writing this folder; wait for it to finish "
            "or build into another folder"
        )


class OutputIsInputError(WeightspaceError):
    """An output path names an input file or an unrelated non-empty folder; it would destroy it."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")


class OutputExistsError(WeightspaceError, FileExistsError):
    """An output file already exists and the command does not overwrite outputs."""

    def __init__(self, path, reason: str = "exists; refusing to overwrite it (remove it or choose another --out)"):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")


class EditError(WeightspaceError, ValueError):
    """An INR edit, editor or edit input is unknown or does not fit the editor."""
