"""Plain reference implementations the fast paths must equal (STYLE.md
practice 3: a per-sample loop lives only on the test side).  Used by the
tests and, as the reference run, by the benchmarks."""
from __future__ import annotations

import torch

from numerics.core.models import build_model
from numerics.core.prompts import build_context
from numerics.core.stream import frames
from numerics.core.teachers import teacher_update


def algorithm1_loop(cfg, foreach: bool | None = None):
    """Algorithm 1 as written (THEORY.md section 5): one MDP at a time, one
    Adam step per frame on that prompt's loss, ``w <- teacher output``,
    ``s_0 <- s_n``; the learning rate decays by MDPs seen, as in
    ``numerics.train``.  Same seeds as ``numerics.train.train`` (data
    ``cfg.seed``, initial weights ``cfg.seed + 2_000_003``).

    Returns ``(model, frames_done)``."""
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_model("lsa", cfg.algorithm, cfg.d, cfg.n, gen=torch.Generator().manual_seed(cfg.seed + 2_000_003))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=foreach)
    dist = cfg.distribution()
    done = 0
    for j in range(cfg.mdps):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * cfg.lr_decay ** (j // cfg.lr_every)
        mdp, F = dist.sample(1, gen)
        teach = lambda th, w: teacher_update(cfg.algorithm, F, w, th, mdp.gamma, cfg.epsilon, cfg.alpha, cfg.beta)
        for theta, win in frames(cfg.algorithm, mdp, F, cfg.n, cfg.epsilon, cfg.frames, gen, teach):
            X, wt = build_context(cfg.algorithm, F, win, theta, mdp.gamma, cfg.epsilon)
            loss = 0.5 * ((model.readout(X, wt) - teach(theta, win)) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
    return model, done
