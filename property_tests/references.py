"""Plain reference implementations the fast paths must equal (STYLE.md
practice 3: a per-sample loop lives only on the test side).  Used by the
tests and, as the reference run, by the benchmarks."""
from __future__ import annotations

import torch

from numerics.core.block import mimic_loss
from numerics.core.models import build_model
from numerics.core.policies import behaviour_probs, gather, sample_categorical
from numerics.core.prompts import prompt_from_window
from numerics.core.stream import Window, initial_state
from numerics.core.teachers import teacher_from_window


def sample_window_per_step(record, mdp, F, s0, theta, n: int, epsilon: float, gen: torch.Generator) -> Window:
    """Roll ``n`` transitions from ``s0``, evaluating the behaviour policy at
    each visited state and drawing each categorical by its inverse CDF, one
    step at a time (the reference for ``numerics.core.stream.sample_window``,
    which precomputes the policy at every state and the transition CDFs)."""
    bidx = torch.arange(mdp.batch, device=s0.device)
    s = [s0]
    a = [sample_categorical(behaviour_probs(record, gather(F, s0[:, None])[:, 0], theta, epsilon), gen)]
    r = []
    for _ in range(n):
        nxt = sample_categorical(mdp.T[bidx, s[-1], a[-1]], gen)
        r.append(mdp.R[bidx, s[-1], a[-1], nxt])
        s.append(nxt)
        a.append(sample_categorical(behaviour_probs(record, gather(F, nxt[:, None])[:, 0], theta, epsilon), gen))
    return Window(torch.stack(s, 1), torch.stack(a, 1), torch.stack(r, 1))


def algorithm1_loop(cfg, foreach: bool | None = None):
    """Algorithm 1 as written (THEORY.md section 5): one MDP at a time, one
    Adam step per frame on that prompt's loss, ``w <- teacher output``,
    ``s_0 <- s_n``; the learning rate decays by MDPs seen, as in
    ``numerics.analysis.train``.  Same seeds as ``numerics.analysis.train.train``
    (data ``cfg.seed``, initial weights ``cfg.seed + 2_000_003``).

    Returns ``(model, frames_done)``."""
    record = cfg.record
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_model("lsa", record, cfg.d, cfg.n, gen=torch.Generator().manual_seed(cfg.seed + 2_000_003))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=foreach)
    dist = cfg.distribution()
    steps = {"alpha": cfg.alpha, "beta": cfg.beta}
    done = 0
    for j in range(cfg.mdps):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * cfg.lr_decay ** (j // cfg.lr_every)
        mdp, F = dist.sample(1, gen)
        theta, s0 = initial_state(record, mdp, F, gen)
        for _ in range(cfg.frames):
            win = sample_window_per_step(record, mdp, F, s0, theta, cfg.n, cfg.epsilon, gen)
            X, wt = prompt_from_window(record, F, win, theta, mdp.gamma, cfg.epsilon)
            target = teacher_from_window(record, F, win, theta, mdp.gamma, cfg.epsilon, steps)
            loss = mimic_loss(model.readout(X, wt), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            theta, s0 = target, win.s[:, -1]
            done += 1
    return model, done
