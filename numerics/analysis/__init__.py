"""What the toolkit computes: block-vs-teacher checks, the Hessian on the
optimal set and richness, gradient flow, training, in-context control and
the richness ablation.  Functions here return typed results and write no
report (training checkpoints aside)."""
