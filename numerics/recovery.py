"""Structure recovery: where trained block weights sit relative to the
optimal manifold ``M* = {(c P12*, Vbar21*/c): c != 0}`` (THEORY.md
section 5), and heatmaps of the learned blocks beside the construction.

The construction comes from ``theory`` through
:func:`numerics.constructions.constructed_blocks`; the distance from
:func:`numerics.manifold.distance_to_manifold` (exact minimum over ``c`` of
either sign, relative to the norm of the closest manifold point).
"""
from __future__ import annotations

from numerics.constructions import constructed_blocks
from numerics.manifold import distance_to_manifold


def learned_blocks(model):
    """``(P12, Vbar21, P22, Vbar22)`` of an LSA block (the last two None in
    the reduced parameterisation), detached, on the CPU."""
    blocks = model.blocks()
    return tuple(None if b is None else b.detach().cpu() for b in blocks)


def recovery_summary(model, cfg) -> dict:
    """Distance of the learned ``(P12, Vbar21)`` to ``M*`` and the fitted ``c``.

    Also: ``p22_norm``, ``vbar22_norm`` (Frobenius; full parameterisation,
    where ``Vbar22 w~ w~^T P22 w~ / n`` is the cubic term the construction
    has at zero; ``p22_sym_norm`` is the norm of P22's symmetric part, the
    only part the quadratic form ``w~^T P22 w~`` sees), and ``p12_rel_error`` / ``vbar21_rel_error``, the relative
    errors of each block against ``c P12*`` and ``Vbar21*/c``.
    """
    P12, Vbar21, P22, Vbar22 = learned_blocks(model)
    P12s, Vbar21s = constructed_blocks(cfg.algorithm, cfg.d, cfg.alpha, cfg.beta)
    rel, c = distance_to_manifold(P12, Vbar21, P12s, Vbar21s)
    out = dict(distance_to_manifold=rel, scale_c=c,
               p12_rel_error=float((P12 - c * P12s).norm() / (c * P12s).norm()),
               vbar21_rel_error=float((Vbar21 - Vbar21s / c).norm() / (Vbar21s / c).norm()),
               p22_norm=None if P22 is None else float(P22.norm()),
               p22_sym_norm=None if P22 is None else float((0.5 * (P22 + P22.T)).norm()),
               vbar22_norm=None if Vbar22 is None else float(Vbar22.norm()))
    return out


def plot_heatmaps(model, cfg, path: str, title: str = ""):
    """PNG (atomic): learned ``P12`` and ``Vbar21`` beside ``c P12*`` and
    ``Vbar21*/c`` (``c`` fitted), one shared colour scale per block."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from numerics.io import atomic_savefig
    P12, Vbar21, _, _ = learned_blocks(model)
    P12s, Vbar21s = constructed_blocks(cfg.algorithm, cfg.d, cfg.alpha, cfg.beta)
    rel, c = distance_to_manifold(P12, Vbar21, P12s, Vbar21s)
    panels = [(P12, "learned P12"), (c * P12s, f"construction c P12* (c = {c:.3g})"),
              (Vbar21, "learned Vbar21"), (Vbar21s / c, "construction Vbar21*/c")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 9))
    fig.subplots_adjust(hspace=0.35)
    for row in range(2):
        A, B = panels[2 * row][0], panels[2 * row + 1][0]
        vmax = float(max(A.abs().max(), B.abs().max())) or 1.0
        for col in range(2):
            M, name = panels[2 * row + col]
            ax = axes[row, col]
            im = ax.imshow(M.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest", aspect="auto")
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("parameter column (1, w)" if row == 0 else "context row (phi, gamma phi+, r)")
            ax.set_ylabel("context row (phi, gamma phi+, r)" if row == 0 else "read-out (w)")
        fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.8)
    fig.suptitle(title or f"{cfg.algorithm}, {cfg.parameterization}: relative distance to M* = {rel:.3%}")
    atomic_savefig(fig, path, dpi=80)
    plt.close(fig)
    return path
