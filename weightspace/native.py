"""Building the library's C++ kernels (weightspace.lopt's fused step, the graph metanetworks'
fused edge kernels).

Each kernel is one C++ file with a plain C ABI, compiled on first use with
`torch.utils.cpp_extension.load_inline` (g++ and ninja, no torch headers, so a build takes
seconds) into the torch extensions directory, once per machine (the name carries a hash of the
CPU's feature flags, as `-march=native` builds are not portable), and loaded with ctypes.
Callers catch the failure of a build and fall back to their torch path.
"""
from __future__ import annotations

import ctypes
import hashlib
import platform
from pathlib import Path

FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]


def cpu_tag() -> str:
    """A short hash of the CPU's feature flags: `-march=native` builds are not shared across CPUs."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return hashlib.sha1((flags or platform.processor() or platform.machine()).encode()).hexdigest()[:10]


def load_library(name: str, source: Path, flags: list[str] | None = None) -> ctypes.CDLL:
    """The shared library built from the C++ file `source` as `{name}_{cpu_tag()}` (built once, cached),
    with `flags` (default `FLAGS`; a kernel whose results must not depend on the CPU passes plain `-O3`).

    Raises whatever the build or the load raises (no compiler, no ninja, no OpenMP)."""
    from torch.utils.cpp_extension import load_inline

    flags = FLAGS if flags is None else flags
    path = load_inline(f"{name}_{cpu_tag()}", cpp_sources=[source.read_text()], extra_cflags=flags,
                       extra_ldflags=["-fopenmp"] if "-fopenmp" in flags else [],
                       no_implicit_headers=True, is_python_module=False)
    return ctypes.CDLL(path)


def load_or_warn(name: str, source: Path, what: str, flags: list[str] | None = None) -> ctypes.CDLL | None:
    """`load_library`, or None with one `RuntimeWarning` naming `what` when the build or load fails
    (callers then take their torch path)."""
    import warnings

    try:
        return load_library(name, source, flags)
    except Exception as err:  # any build or load failure means: use the torch path
        warnings.warn(f"{what} could not be built ({err}); using the torch path", RuntimeWarning, stacklevel=3)
        return None
