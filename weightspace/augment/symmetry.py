"""Augmentations that keep the function: random elements of the spec's group, and the
SIREN bias shift."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..errors import SpecError
from ..spec import GroupElement, WeightSpec
from .base import StateDict, Transform, batch_shape


@dataclass
class RandomSymmetry(Transform):
    """A random element of the spec's symmetry group per sample.

    permutations: a uniform permutation of every group; signs: random sign flips on
    groups whose activation is odd (the spec records "sign"); scales: log-uniform
    positive rescaling in `scale_range` on ReLU-family groups ("scale"). Symmetries the
    spec does not record are never drawn, so the function is unchanged. It acts on the
    entries the batch holds (a metanetwork batch may hold the parameters only).
    """

    spec: WeightSpec
    permutations: bool = True
    signs: bool = True
    scales: bool = False
    scale_range: tuple[float, float] = (0.5, 2.0)

    preserves_function = True

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        lead = batch_shape(self.spec, sd)
        g = self.spec.random_element(generator, extra=self.signs or self.scales, batch_shape=lead,
                                     scale_range=self.scale_range)
        g = GroupElement(g.perms if self.permutations else {}, g.signs if self.signs else {},
                         g.scales if self.scales else {})
        return self.spec.apply(sd, g, batch_dims=len(lead), strict=False)


@dataclass
class SirenBiasShift(Transform):
    """Shift hidden biases of a SIREN by k·π/ω0 and flip the unit's outgoing weights by (-1)^k.

    sin(ω0(z + kπ/ω0)) = (-1)^k sin(ω0 z), so the function is unchanged. Valid only
    where the hidden activation is sin(ω0·(Wx + b)); the spec's "sign" groups say which
    units are odd, not that they are sines, so apply this to SIRENs only. k is uniform in
    {-max_multiple, …, max_multiple} per unit and sample.
    """

    spec: WeightSpec
    omega0: float = 30.0
    max_multiple: int = 1

    preserves_function = True

    def __post_init__(self) -> None:
        self._plans = []
        for name, group in self.spec.groups.items():
            if "sign" not in group.extra:
                continue
            biases = [a.key for a in group.extra_action if a.power > 0 and len(self.spec.entries[a.key].shape) == 1]
            outgoing = tuple(a for a in group.extra_action if a.power < 0)
            if len(biases) == 1 and outgoing:
                self._plans.append((name, biases[0], outgoing))
        if not self._plans:
            raise SpecError("SirenBiasShift: the spec has no sign-symmetric group with one bias and outgoing weights")
        groups = dict(self.spec.groups)
        for name, _, outgoing in self._plans:
            groups[name] = replace(groups[name], extra=("sign",), extra_action=outgoing)
        self._outgoing_only = replace(self.spec, groups=groups)

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        lead = batch_shape(self.spec, sd)
        signs, shifts = {}, {}
        for name, bias, _ in self._plans:
            k = torch.randint(-self.max_multiple, self.max_multiple + 1, (*lead, self.spec.groups[name].size),
                              generator=generator)
            signs[name] = 1.0 - 2.0 * (k % 2).to(torch.get_default_dtype())
            shifts[bias] = k.to(torch.float64) * (math.pi / self.omega0)
        out = self._outgoing_only.apply(sd, GroupElement({}, signs, {}), batch_dims=len(lead), strict=False)
        for bias, shift in shifts.items():
            if bias in out:
                out[bias] = out[bias] + shift.to(device=out[bias].device, dtype=out[bias].dtype)
        return out
