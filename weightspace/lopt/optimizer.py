"""`LearnedOptimizer`: a `torch.optim.Optimizer` that steps with a `LearnedRule`.

    rule = load_rule("groups.safetensors")
    spec = ws.parse(model, (x,))
    opt = LearnedOptimizer(model.named_parameters(), rule, spec=spec)
    loss.backward(); opt.step()

Per-parameter accumulators live in `self.state` (so `state_dict()` / `load_state_dict()`
resume exactly), each group's `lr` multiplies the update (so LR schedulers work),
fused rules step in place (`inplace.inplace_step`, the same update with less memory
traffic; `rule.fused = False` runs the pure reference `LearnedRule.forward`), and all parameters of the optimizer are updated in one call of the rule, because
meta-networks that pool over a tensor or a group read several entries at once.
"""
from __future__ import annotations

from typing import Iterable

import torch

from ..errors import ConfigError, LoptError, SpecError
from ..spec import WeightSpec
from .features import init_state
from .inplace import Workspace, inplace_step, supports_inplace
from .rule import LearnedRule
from .unf_net import prepare_spec


class LearnedOptimizer(torch.optim.Optimizer):
    """Optimizer whose update is computed by a learned rule.

    Args:
        params: parameters or (name, parameter) pairs (`model.named_parameters()`),
            or param-group dicts. Names are needed when `spec` is given; they are
            the spec's keys.
        rule: the learned update (its weights are not optimized here).
        spec: the task model's spec (`ws.parse` / `ws.infer_spec`), for meta-networks
            that read it ("groups", "unf"); buffers and sign/scale symmetries in it
            are ignored.
        lr: multiplies the rule's update (default 1: the rule's learned step size).
    """

    def __init__(
        self,
        params: Iterable,
        rule: LearnedRule,
        spec: WeightSpec | None = None,
        lr: float = 1.0,
    ):
        if lr < 0:
            raise ConfigError(f"LearnedOptimizer: lr must be >= 0, got {lr}")
        super().__init__(params, {"lr": lr})
        self.rule = rule
        self.spec = None if spec is None else prepare_spec(spec)
        self._names: dict[int, str] = {}
        for gi, group in enumerate(self.param_groups):
            names = group.get("param_names")
            for pi, p in enumerate(group["params"]):
                self._names[id(p)] = names[pi] if names is not None else f"group{gi}.param{pi}"
        if self.spec is not None:
            known = set(self.spec.entries)
            unknown = [n for n in self._names.values() if n not in known]
            if unknown:
                raise SpecError(
                    f"LearnedOptimizer: parameters {unknown[:6]} are not entries of the spec; pass "
                    "model.named_parameters() of the model the spec describes"
                )
        self._specs: dict[tuple[str, ...], WeightSpec] = {}
        self._workspace = Workspace()

    def _spec_for(self, keys: tuple[str, ...]) -> WeightSpec | None:
        if self.spec is None:
            return None
        if keys == tuple(self.spec.entries):
            return self.spec
        if keys not in self._specs:
            self._specs[keys] = prepare_spec(self.spec, keys=list(keys))
        return self._specs[keys]

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params, grads, states, lrs, owners = {}, {}, {}, {}, {}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise LoptError("LearnedOptimizer does not support sparse gradients")
                name = self._names[id(p)]
                state = self.state[p]
                if not state:
                    state.update(init_state(p, self.rule.features))
                params[name], grads[name], owners[name] = p.detach(), p.grad, p
                states[name] = {k: state[k] for k in ("step", "momenta", "rms")}
                lrs[name] = group["lr"]
        if not params:
            return loss
        order = tuple(k for k in (self.spec.entries if self.spec is not None else params) if k in params)
        params = {k: params[k] for k in order}
        if supports_inplace(self.rule):
            inplace_step(self.rule, params, grads, states, self._spec_for(order), lrs, self._workspace)
            return loss
        lr_values = set(lrs.values())
        if len(lr_values) == 1:
            new_params, new_states = self.rule(params, grads, states, self._spec_for(order), lr_values.pop())
        else:
            new_params, new_states = self.rule(params, grads, states, self._spec_for(order))
            new_params = {k: params[k] + lrs[k] * (new_params[k] - params[k]) for k in order}
        for k in order:
            owners[k].copy_(new_params[k])
            self.state[owners[k]].update(new_states[k])
        return loss
