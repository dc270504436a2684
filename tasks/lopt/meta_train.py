"""Meta-train a learned rule on a task family: truncated backprop or antithetic ES/PES.

- "tbptt": backprop through `unroll` steps of `tasks` parallel trajectories (Metz et al.).
- "es": antithetic evolution strategies on each truncation, all particles starting
  from the shared trajectory, which then advances with the unperturbed rule.
- "pes": persistent ES (Vicol et al. 2021): each antithetic particle keeps its own
  trajectory and accumulates its perturbations over the truncations of a task, which
  removes the truncation bias of ES.

Every `horizon` inner steps a trajectory restarts on a newly sampled task. With
`cpu_budget` > 0 the run also stops once its meta-steps have used that many CPU
seconds (process time, summed over resumed calls): rules of different cost then
train with the same budget. Meta-gradients
are clipped by norm and applied with Adam. A checkpoint (rule, meta-optimizer,
trajectories, particles, history) is written atomically every `checkpoint_every`
meta-steps and at the end; `meta_train` resumes from it and then continues exactly
as an uninterrupted run would.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from tqdm.auto import tqdm

from weightspace.errors import ConfigError
from weightspace.lopt import LearnedRule, save_rule
from weightspace.lopt.rule import BOUNDS

from .families import FAMILIES, Task
from .unroll import Trajectory, unroll

METHODS = ("tbptt", "es", "pes")
CHECKPOINT = "checkpoint.pt"


@dataclass
class MetaConfig:
    """Settings of one meta-training run (see the module docstring)."""

    net: str = "groups"
    family: str = "mlp-digits"
    method: str = "tbptt"
    meta_steps: int = 200
    horizon: int = 200
    unroll: int = 10
    tasks: int = 2
    population: int = 4
    sigma: float = 0.01
    meta_lr: float = 3e-3
    clip: float = 1.0
    hidden: int = 32
    layers: int = 2
    nominal: str = "adam"
    bound: str = "relative"
    cpu_budget: float = 0.0
    second_order: bool = False
    seed: int = 0
    checkpoint_every: int = 50

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"unknown meta-training method {self.method!r}; expected one of {METHODS}")
        if self.bound not in BOUNDS:
            raise ConfigError(f"unknown bound {self.bound!r}; expected one of {BOUNDS}")
        if self.cpu_budget < 0:
            raise ConfigError(f"cpu_budget must be >= 0 (0: no budget), got {self.cpu_budget}")
        if min(self.meta_steps, self.horizon, self.unroll, self.tasks, self.population) < 1 or self.sigma <= 0:
            raise ConfigError(f"meta_steps, horizon, unroll, tasks, population and sigma must be positive: {self}")

    @classmethod
    def from_dict(cls, d: dict) -> "MetaConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def task_seed(config: MetaConfig, slot: int, counter: int) -> int:
    """Seed of the `counter`-th task of trajectory slot `slot` (disjoint from evaluation seeds)."""
    return config.seed * 100_000 + slot * 10_000 + counter


def build_rule(config: MetaConfig) -> LearnedRule:
    torch.manual_seed(config.seed)
    family = FAMILIES.get(config.family)
    spec = family.sample(task_seed(config, 0, 0)).spec if config.net == "unf" else None
    return LearnedRule.build(config.net, spec=spec, hidden=config.hidden, layers=config.layers, nominal=config.nominal,
                             bound=config.bound)


class MetaTrainer:
    """Holds the rule, the meta-optimizer and the inner trajectories of one run."""

    def __init__(self, config: MetaConfig, rule: LearnedRule | None = None):
        self.config = config
        self.family = FAMILIES.get(config.family)
        self.rule = rule if rule is not None else build_rule(config)
        self.meta_opt = torch.optim.Adam(self.rule.parameters(), lr=config.meta_lr)
        self.names = [n for n, _ in self.rule.named_parameters()]
        self.shapes = [p.shape for _, p in self.rule.named_parameters()]
        slots = config.tasks if config.method == "tbptt" else 1
        self.counters = [0] * slots
        self.trajs = [self._fresh(s) for s in range(slots)]
        self.particles: list[list[Trajectory]] = []
        self.xi: list[torch.Tensor] = []
        self.step = 0
        self.cpu_used = 0.0
        self.history: list[dict] = []
        self.noise = torch.Generator().manual_seed(config.seed + 7)

    # ------------------------------------------------------------------ tasks
    def _fresh(self, slot: int) -> Trajectory:
        task: Task = self.family.sample(task_seed(self.config, slot, self.counters[slot]))
        self.counters[slot] += 1
        return Trajectory.start(task, self.rule)

    def _maybe_restart(self, slot: int) -> None:
        if self.trajs[slot].step + self.config.unroll > self.config.horizon:
            self.trajs[slot] = self._fresh(slot)
            self.particles, self.xi = [], []

    # ------------------------------------------------------------------ estimators
    def _theta(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(vector, [s.numel() for s in self.shapes])
        return {n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes)}

    def _tbptt(self) -> tuple[float, list[torch.Tensor]]:
        self.meta_opt.zero_grad()
        total = 0.0
        for slot in range(len(self.trajs)):
            self._maybe_restart(slot)
            loss, new = unroll(self.rule, self.trajs[slot], self.config.unroll, track=True,
                               second_order=self.config.second_order)
            if not torch.isfinite(loss):
                self.trajs[slot] = self._fresh(slot)
                continue
            (loss / len(self.trajs)).backward()
            self.trajs[slot] = new.detached()
            total += loss.item() / len(self.trajs)
        return total, [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.rule.parameters()]

    def _es(self, persistent: bool) -> tuple[float, list[torch.Tensor]]:
        cfg = self.config
        self._maybe_restart(0)
        base = self.trajs[0]
        theta = torch.nn.utils.parameters_to_vector(self.rule.parameters()).detach()
        if persistent and not self.particles:
            self.particles = [[base, base] for _ in range(cfg.population)]
            self.xi = [torch.zeros_like(theta) for _ in range(cfg.population)]
        grad = torch.zeros_like(theta)
        losses = []
        for i in range(cfg.population):
            eps = cfg.sigma * torch.randn(theta.shape, generator=self.noise)
            starts = self.particles[i] if persistent else [base, base]
            if persistent:
                self.xi[i] = self.xi[i] + eps
            weight = self.xi[i] if persistent else eps
            pair = []
            for sign, start in zip((1.0, -1.0), starts):
                with torch.no_grad():
                    loss, new = unroll(self.rule, start, cfg.unroll, theta=self._theta(theta + sign * eps))
                pair.append((loss.item(), new))
            (lp, np_), (lm, nm) = pair
            if math.isfinite(lp) and math.isfinite(lm):
                grad += weight * (lp - lm) / (2 * cfg.sigma**2 * cfg.population)
                losses += [lp, lm]
            if persistent:
                self.particles[i] = [np_, nm]
        if persistent:
            self.trajs[0] = self.particles[0][0]
        else:
            with torch.no_grad():
                _, self.trajs[0] = unroll(self.rule, base, cfg.unroll)
        return (sum(losses) / len(losses) if losses else float("nan")), list(torch.split(grad, [s.numel() for s in self.shapes]))

    def meta_step(self) -> float:
        """One meta-gradient step; returns the meta-loss it measured."""
        cpu0 = time.process_time()
        if self.config.method == "tbptt":
            loss, grads = self._tbptt()
        else:
            loss, grads = self._es(self.config.method == "pes")
        for p, g in zip(self.rule.parameters(), grads):
            p.grad = g.reshape(p.shape).clone()
        norm = torch.nn.utils.clip_grad_norm_(self.rule.parameters(), self.config.clip)
        if torch.isfinite(norm):
            self.meta_opt.step()
        self.meta_opt.zero_grad()
        self.step += 1
        self.cpu_used += time.process_time() - cpu0
        self.history.append({"step": self.step, "meta_loss": loss, "grad_norm": float(norm), "cpu_s": self.cpu_used})
        return loss

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {
            "config": asdict(self.config),
            "step": self.step,
            "cpu_used": self.cpu_used,
            "rule": self.rule.state_dict(),
            "meta_opt": self.meta_opt.state_dict(),
            "counters": list(self.counters),
            "trajs": [t.to_dict() for t in self.trajs],
            "particles": [[a.to_dict(), b.to_dict()] for a, b in self.particles],
            "xi": list(self.xi),
            "noise": self.noise.get_state(),
            "history": json.dumps(self.history),
        }

    def _restore_traj(self, d: dict) -> Trajectory:
        task = self.family.sample(int(d["seed"]))
        return Trajectory(task, dict(d["params"]), {k: dict(s) for k, s in d["states"].items()}, int(d["step"]))

    def load_state(self, state: dict) -> None:
        self.rule.load_state_dict(state["rule"])
        self.meta_opt.load_state_dict(state["meta_opt"])
        self.step = int(state["step"])
        self.cpu_used = float(state.get("cpu_used", 0.0))
        self.counters = list(state["counters"])
        self.trajs = [self._restore_traj(d) for d in state["trajs"]]
        self.particles = [[self._restore_traj(a), self._restore_traj(b)] for a, b in state["particles"]]
        self.xi = list(state["xi"])
        self.noise.set_state(state["noise"])
        self.history = json.loads(state["history"])

    def save_checkpoint(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path, tmp = folder / CHECKPOINT, folder / f".{CHECKPOINT}.tmp"
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        return path


def meta_train(config: MetaConfig, out: str | Path | None = None, *, resume: bool = True,
               progress: bool = True, stop_after: int | None = None) -> MetaTrainer:
    """Run (or resume) meta-training; with `out`, write checkpoints and `rule.safetensors` there.

    stop_after: leave after this many meta-steps of this call (to test resuming).
    """
    folder = Path(out) if out is not None else None
    trainer = MetaTrainer(config)
    if folder is not None and resume and (folder / CHECKPOINT).is_file():
        state = torch.load(folder / CHECKPOINT, weights_only=True)
        if MetaConfig.from_dict(state["config"]) != config:
            raise ConfigError(f"{folder / CHECKPOINT} was written with another config; use another folder or resume=False")
        trainer.load_state(state)
    cpu0 = time.process_time()
    todo = config.meta_steps - trainer.step
    if stop_after is not None:
        todo = min(todo, stop_after)
    bar = tqdm(range(todo), desc=f"meta-train {config.net}/{config.method}", disable=not progress)
    for _ in bar:
        if config.cpu_budget and trainer.cpu_used >= config.cpu_budget:
            break
        loss = trainer.meta_step()
        bar.set_postfix(meta_loss=f"{loss:.4f}", alpha=f"{trainer.rule.alpha:.3g}", beta=f"{trainer.rule.beta:.3g}")
        if folder is not None and trainer.step % config.checkpoint_every == 0:
            trainer.save_checkpoint(folder)
    if folder is not None:
        trainer.save_checkpoint(folder)
        meta = {"meta_config": json.dumps(asdict(config)), "cpu_seconds_this_call": f"{time.process_time() - cpu0:.1f}",
                "meta_steps_done": str(trainer.step), "meta_cpu_seconds": f"{trainer.cpu_used:.1f}"}
        save_rule(trainer.rule, folder / "rule.safetensors", metadata=meta)
    return trainer


@torch.no_grad()
def meta_objective(rule: LearnedRule, family: str, seeds: list[int], horizon: int, length: int = 10) -> float:
    """Mean training loss over `horizon` rule steps on each task seed (no perturbation, no grad).

    The quantity meta-training lowers, measured on fixed tasks so two rules compare exactly.
    """
    fam = FAMILIES.get(family)
    total, count = 0.0, 0
    for seed in seeds:
        traj = Trajectory.start(fam.sample(seed), rule)
        while traj.step + length <= horizon:
            loss, traj = unroll(rule, traj, length)
            total, count = total + loss.item(), count + 1
    return total / max(count, 1)
