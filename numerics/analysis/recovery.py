"""Structure recovery: where trained block weights sit relative to the
optimal manifold ``M* = {(c P12*, Vbar21*/c): c != 0}`` (THEORY.md
section 5), (the heatmaps of the learned blocks are drawn by ``numerics.render.training``).

The construction comes from ``theory`` through
:func:`numerics.constructions.constructed_blocks`; the distance from
:func:`numerics.manifold.distance_to_manifold` (exact minimum over ``c`` of
either sign, relative to the norm of the closest manifold point).
"""
from __future__ import annotations

from numerics.analysis.manifold import distance_to_manifold
from numerics.core.constructions import constructed_blocks


def learned_blocks(model):
    """``(P12, Vbar21, P22, Vbar22)`` of an LSA block (the last two None in
    the reduced parameterisation), detached, on the CPU."""
    blocks = model.blocks()
    return tuple(None if b is None else b.detach().cpu() for b in blocks)


def construction_of(cfg):
    """``(P12*, Vbar21*)`` of a training configuration's algorithm, size and step sizes."""
    return constructed_blocks(cfg.record, cfg.d, {"alpha": cfg.alpha, "beta": cfg.beta})


def recovery_summary(model, cfg) -> dict:
    """Distance of the learned ``(P12, Vbar21)`` to ``M*`` and the fitted ``c``.

    Also: ``p22_norm``, ``vbar22_norm`` (Frobenius; full parameterisation,
    where ``Vbar22 w~ w~^T P22 w~ / n`` is the cubic term the construction
    has at zero; ``p22_sym_norm`` is the norm of P22's symmetric part, the
    only part the quadratic form ``w~^T P22 w~`` sees), and ``p12_rel_error`` / ``vbar21_rel_error``, the relative
    errors of each block against ``c P12*`` and ``Vbar21*/c``.
    """
    P12, Vbar21, P22, Vbar22 = learned_blocks(model)
    P12s, Vbar21s = construction_of(cfg)
    rel, c = distance_to_manifold(P12, Vbar21, P12s, Vbar21s)
    out = dict(distance_to_manifold=rel, scale_c=c,
               p12_rel_error=float((P12 - c * P12s).norm() / (c * P12s).norm()),
               vbar21_rel_error=float((Vbar21 - Vbar21s / c).norm() / (Vbar21s / c).norm()),
               p22_norm=None if P22 is None else float(P22.norm()),
               p22_sym_norm=None if P22 is None else float((0.5 * (P22 + P22.T)).norm()),
               vbar22_norm=None if Vbar22 is None else float(Vbar22.norm()))
    return out
