"""Numeric side of the toolkit: batched, float64 PyTorch implementations of
the objects in THEORY.md, in layers that import only from the layers below
them (contracts of import-linter in ``pyproject.toml``):

* ``numerics.core``: the paper's objects (MDPs and distributions, the
  Algorithm 1 stream, prompts, teachers, the block, models, tolerances);
* ``numerics.reference``: an independent reference teacher (numpy only; it
  imports nothing from ``numerics``);
* ``numerics.io``: files and configuration (atomic writes, weight, MDP and
  model files, checkpoints, Gymnasium tables, options, reports);
* ``numerics.analysis``: what the toolkit computes (check, Hessian,
  richness, flow, training, control, ablation);
* ``numerics.render``: Markdown and plots of analysis results;
* ``numerics.claims``: the claims of the papers and the checks that decide them;
* ``numerics.commands``: the command line (argparse and printing only).

``numerics.testing.strategies`` holds Hypothesis strategies for users'
own tests (it imports hypothesis; nothing else in the package does).
"""
