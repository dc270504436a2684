"""Inner training trajectories and truncated unrolls of a learned rule.

A trajectory is one task being trained: its parameters, the rule's per-parameter
state and the inner step. `unroll` runs K steps of the rule from a trajectory and
returns the meta-loss (mean training loss on the next minibatch after each step)
and the new trajectory. With `track=True` the meta-loss is differentiable in the
rule's meta-parameters (truncated backprop through the unroll); task gradients are
treated as constants unless `second_order` (the usual first-order truncation).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call

from weightspace.lopt import LearnedRule
from weightspace.lopt.features import init_state
from weightspace.lopt.unf_net import prepare_spec
from weightspace.spec import WeightSpec

from .families import Params, Task

_PREPARED: dict[int, tuple[WeightSpec, WeightSpec]] = {}


def rule_spec(task: Task) -> WeightSpec:
    """The task's spec as the rule reads it (parameters only, permutations only), cached."""
    hit = _PREPARED.get(id(task.spec))
    if hit is None:
        hit = (task.spec, prepare_spec(task.spec, keys=list(task.params0)))
        _PREPARED[id(task.spec)] = hit
    return hit[1]


@dataclass
class Trajectory:
    """A task in training: parameters, per-parameter rule state and the inner step."""

    task: Task
    params: Params
    states: dict[str, dict[str, torch.Tensor]]
    step: int = 0

    @classmethod
    def start(cls, task: Task, rule: LearnedRule) -> "Trajectory":
        params = task.init_params()
        return cls(task, params, {k: init_state(v, rule.features) for k, v in params.items()}, 0)

    def detached(self) -> "Trajectory":
        return Trajectory(
            self.task,
            {k: v.detach() for k, v in self.params.items()},
            {k: {n: t.detach() for n, t in s.items()} for k, s in self.states.items()},
            self.step,
        )

    def to_dict(self) -> dict:
        return {"seed": self.task.seed, "step": self.step, "params": self.params, "states": self.states}


def unroll(
    rule: LearnedRule,
    traj: Trajectory,
    length: int,
    *,
    theta: dict[str, torch.Tensor] | None = None,
    track: bool = False,
    second_order: bool = False,
) -> tuple[torch.Tensor, Trajectory]:
    """Run `length` rule steps; return (meta-loss, trajectory after them).

    theta: meta-parameters to use instead of the rule's own (ES/PES perturbations).
    """
    task, spec = traj.task, rule_spec(traj.task)
    params, states = dict(traj.params), dict(traj.states)
    losses = []
    with torch.set_grad_enabled(True):
        for k in range(length):
            x, y = task.batch(traj.step + k)
            if not track or k == 0:
                params = {n: v.detach().requires_grad_(True) for n, v in params.items()}
            loss = task.loss(params, x, y)
            if k > 0:
                losses.append(loss)
            grads = torch.autograd.grad(loss, list(params.values()), retain_graph=track, create_graph=track and second_order)
            grads = {n: g if second_order else g.detach() for n, g in zip(params, grads)}
            with torch.set_grad_enabled(track):
                if theta is None:
                    params, states = rule(params, grads, states, spec)
                else:
                    params, states = functional_call(rule, theta, (params, grads, states, spec))
        x, y = task.batch(traj.step + length)
        with torch.set_grad_enabled(track):
            losses.append(task.loss(params, x, y))
    meta_loss = torch.stack(losses).mean()
    new = Trajectory(task, params, states, traj.step + length)
    return meta_loss, (new if track else new.detached())
