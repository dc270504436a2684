"""The optimizer's in-place step computes the pure reference update of `LearnedRule.forward`."""
from __future__ import annotations

import pytest
import torch

from weightspace.lopt import LearnedRule
from weightspace.lopt.features import init_state
from weightspace.lopt.inplace import Workspace, inplace_step
from weightspace.testing import random_cnn_spec
from tests.lopt.cases import perturbed

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("nominal", ["adam", "sgdm"])
@pytest.mark.parametrize("bound", ["relative", "none"])
@pytest.mark.parametrize("kind", ["mlp", "deepset", "groups"])
def test_inplace_step_matches_the_reference_path(kind, bound, nominal, device):
    spec = random_cnn_spec([2, 3, 4], 3, 4, 5)
    gen = torch.Generator().manual_seed(0)
    start = {k: torch.randn(e.shape, generator=gen, dtype=torch.float64).to(device) for k, e in spec.entries.items()}
    rule = perturbed(LearnedRule.build(kind, hidden=6, layers=3, bound=bound, nominal=nominal, alpha=0.3).double(), 1)
    rule = rule.to(device)
    with torch.no_grad():
        rule.log_beta.fill_(0.0)
    lrs = {k: 0.5 + 0.1 * i for i, k in enumerate(start)}
    params = {k: v.clone() for k, v in start.items()}
    states = {k: init_state(v, rule.features) for k, v in params.items()}
    reference = dict(start)
    ref_states = {k: init_state(v, rule.features) for k, v in start.items()}
    rule.fused = False
    workspace = Workspace()
    for _ in range(3):
        grads = {k: v**3 - v for k, v in params.items()}
        inplace_step(rule, params, grads, states, spec, lrs, workspace)
        new, ref_states = rule({k: v for k, v in reference.items()}, {k: v**3 - v for k, v in reference.items()},
                               ref_states, spec)
        reference = {k: reference[k] + lrs[k] * (new[k] - reference[k]) for k in new}
    assert max((reference[k] - start[k]).abs().max().item() for k in start) > 0.1
    for k in start:
        torch.testing.assert_close(params[k], reference[k], rtol=1e-10, atol=1e-12)
        for name in ("momenta", "rms", "step"):
            torch.testing.assert_close(states[k][name], ref_states[k][name], rtol=1e-12, atol=1e-14)
