"""Where a command's MDPs come from (docs/families.md): the built-in
Section 4.1 options (default), ``--family NAME`` with its parameters,
``--mdp-batch FILE.npz`` or ``--distribution module:function``; at most one
of the last three."""
from __future__ import annotations

import argparse
import functools
import json

from numerics.io.config import distribution_from_args, positive_int
from numerics.io.families import BOYAN_FEATURES, DARKROOM_FEATURES, FAMILIES, GOAL_DISTRIBUTIONS, family_distribution
from numerics.io.mdp_batch import BatchDistribution, GeneratorDistribution, load_callable, load_mdp_batch
from numerics.io.options import Choice, Path, Real, Text
from theory import algorithms as registry
from theory.errors import InputError

#: a probability, e.g. of a frozen tile
_fraction = Real(minimum=0.0, maximum=1.0)


def add_source_options(p: argparse.ArgumentParser):
    g = p.add_argument_group("MDP source (default: the Section 4.1 options above; docs/families.md)")
    g.add_argument("--family", choices=FAMILIES, default="section41",
                   help="named family: section41 (the options above), boyan (Boyan 2002 / Wang et al. 2025), "
                        "darkroom (Laskin et al. 2022, Lee et al. 2023), frozenlake (Gymnasium random maps); "
                        "gamma from --gamma / --gamma-range")
    g.add_argument("--grid", type=positive_int, default=5, help="darkroom: grid size G (5; d = 5 G^2 one-hot)")
    g.add_argument("--goals", choices=GOAL_DISTRIBUTIONS, default="uniform",
                   help="darkroom: goal cell uniform over all cells, or over the top half (uniform)")
    g.add_argument("--family-features", type=Choice(sorted(set(DARKROOM_FEATURES) | set(BOYAN_FEATURES))), default=None,
                   help=f"darkroom: {' or '.join(DARKROOM_FEATURES)} (onehot); boyan: {' or '.join(BOYAN_FEATURES)} "
                        "(boyan: Boyan's 4 interpolated features; random: Unif(-1,1)^4 per chain)")
    g.add_argument("--chain-states", type=positive_int, default=13, help="boyan: states (13)")
    g.add_argument("--lake-size", type=positive_int, default=4, help="frozenlake: map size (4)")
    g.add_argument("--frozen", type=_fraction, default=0.8, help="frozenlake: probability of a frozen tile (0.8)")
    g.add_argument("--slippery", choices=("yes", "no"), default="yes", help="frozenlake: slippery ice (yes)")
    g.add_argument("--mdp-batch", type=Path(), metavar="FILE.npz", default=None,
                   help="MDPs from a batch file (T, R, gamma, rho0, features), drawn with replacement")
    g.add_argument("--distribution", type=Text(), metavar="MODULE:FUNCTION", default=None,
                   help="MDPs from your generator FUNCTION(seed: int, batch: int) -> dict of the batch arrays")


def family_params(args) -> dict:
    name = args.family
    ff = args.family_features
    if name == "boyan":
        return dict(states=args.chain_states, features=ff or "boyan")
    if name == "darkroom":
        return dict(grid=args.grid, features=ff or "onehot", goals=args.goals)
    if name == "frozenlake":
        return dict(size=args.lake_size, frozen=args.frozen, slippery=args.slippery == "yes")
    return {}


def source_spec(args) -> str | None:
    """The chosen non-default source as one JSON string (for configs that
    are copied to worker processes and written into reports), or None."""
    if args.mdp_batch:
        return json.dumps({"mdp-batch": args.mdp_batch})
    if args.distribution:
        return json.dumps({"distribution": args.distribution})
    if args.family != "section41":
        return json.dumps({"family": args.family, "params": family_params(args),
                           "gamma": args.gamma, "gamma_range": list(args.gamma_range) if args.gamma_range else None})
    return None


@functools.lru_cache(maxsize=8)
def distribution_from_spec(spec: str):
    """The distribution a :func:`source_spec` string names (loaded once)."""
    try:
        s = json.loads(spec)
    except (TypeError, ValueError):
        raise InputError("source", f"not a source specification: {spec!r}") from None
    if "mdp-batch" in s:
        mdp, F = load_mdp_batch(s["mdp-batch"])
        return BatchDistribution(mdp, F, s["mdp-batch"])
    if "distribution" in s:
        return GeneratorDistribution(load_callable(s["distribution"]), s["distribution"])
    if "family" in s:
        gr = tuple(s["gamma_range"]) if s.get("gamma_range") else None
        return family_distribution(s["family"], gamma=s["gamma"], gamma_range=gr, **s.get("params", {}))
    raise InputError("source", f"not a source specification: {spec!r}")


def source_from_args(args, algorithm=None):
    """The distribution the options name (``MDPDistribution``,
    ``BatchDistribution`` or ``GeneratorDistribution``)."""
    base = distribution_from_args(args, algorithm)
    chosen = [k for k, v in (("--mdp-batch", args.mdp_batch), ("--distribution", args.distribution),
                             ("--family", args.family != "section41")) if v]
    if len(chosen) > 1:
        raise InputError("source", f"{' and '.join(chosen)} both name the MDPs; give one")
    record = registry.get(algorithm or args.algorithm)
    if record.features == "state" and chosen:
        raise InputError("source", f"{record.name} uses state features; {chosen[0]} gives state-action features")
    spec = source_spec(args)
    return base if spec is None else distribution_from_spec(spec)


#: The options that describe the built-in Section 4.1 MDPs; another source
#: decides them itself, so a report lists the source's values instead.
SECTION41_KEYS = ("states", "actions", "gamma", "gamma_range", "features")


def source_config(args, dist) -> dict:
    """The report configuration of the options ``args`` with the MDP source
    ``dist``: for ``--mdp-batch`` / ``--distribution`` / ``--family`` the
    Section 4.1 options (parsed, but not used) are replaced by what the
    source actually holds: its file or name, MDP count, states, actions,
    feature dimension and discount(s)."""
    cfg = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    if source_spec(args) is None:
        return cfg
    for k in SECTION41_KEYS:
        cfg.pop(k, None)
    src = dict(states=int(dist.states), actions=int(dist.actions), features_dim=int(dist.d))
    mdp = getattr(dist, "mdp", None)
    if mdp is not None:                          # a batch file: what it holds
        g = mdp.gamma
        src |= dict(mdp_batch=dist.source, mdps_in_batch=int(mdp.batch), features="batch")
        src |= (dict(gamma=float(g[0])) if bool((g == g[0]).all()) else
                dict(gamma_range=[float(g.min()), float(g.max())]))
    elif args.distribution:
        src |= dict(distribution=args.distribution, features="generator")
    else:
        src |= dict(family=args.family, family_params=family_params(args), gamma=args.gamma,
                    gamma_range=list(args.gamma_range) if args.gamma_range else None)
    cfg["source"] = src
    return cfg

