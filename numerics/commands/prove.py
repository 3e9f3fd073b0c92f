"""icrl-verify prove: prove symbolically that the block implements the teacher
update.

Without --weights: the construction of Theorem 3.1 (SARSA, expected SARSA,
Q-learning, TD(0)) or Theorem 3.3 (actor-critic) is proven for every feature
dimension d and context length n at once (SymPy matrix expressions of
symbolic size: Lemma C.1 derived from H + (1/n)(VH)(H^T P H), then read-out
minus teacher simplified to zero), and independently at every concrete size
d <= 3, n <= 3 with every prompt entry a symbol (exact arithmetic, literal
block).  Step sizes stay symbolic unless --alpha/--beta are given.

With --weights FILE.json ({"P": [[...]], "V": [[...]]}, exact entries:
integers, decimals, strings like "1/5" or "-alpha/3" over the symbols alpha,
beta, gamma): the weights are proven at the size their shape implies
(D = 3d+2, or 5d+2 for actor-critic) for every prompt and every n, or the
simplified residual and a counterexample (an exact prompt, n = 1, on which
the literal block and the teacher differ, both values) are printed.
Symbols alpha, beta in the file stand for the teacher's step sizes
(--alpha, --beta; default: two distinct symbols, so every step size).  An
entry undefined for some gamma in [0, 1) or some positive step size (1/gamma,
1/(alpha-beta)) exits 2 naming the entry.

Without --weights, each algorithm's specific parts are proven too (the
softmax score is grad log pi; expected SARSA's and Q-learning's phi+; TD(0)
with state features): JSON key "lemmas".

Writes reports/proofs/ALGORITHM.md (or ALGORITHM-STEM.md with --weights):
the derivation step by step in LaTeX.  Exit 0 proven, 1 the weights do not
implement the update (residual printed), 2 malformed input.
"""
from __future__ import annotations

import os

from numerics.commands import wang as wang_cmd
from numerics.commands.cli import config_of, emit, progress_bar
from numerics.io.commandline import reproduce_command
from numerics.io.files import atomic_write
from numerics.io.options import Exact, Folder, Path
from numerics.io.report import run_header
from theory import algorithms
from theory import prove as P
from theory.errors import InputError
from theory.parse import parse_step

DEFAULT_OUT = os.path.join("reports", "proofs")


def add_arguments(p):
    p.add_argument("--algorithm", choices=wang_cmd.prove_choices(algorithms.names()), default="sarsa",
                   help="teacher whose update is proven, or all (default sarsa)")
    p.add_argument("--weights", type=Path(), metavar="FILE.json", default=None,
                   help='prove these exact weights instead of the construction: {"P": [[...]], "V": [[...]]}, '
                        'entries integers, decimals, or strings like "1/5", "-alpha/3" (symbols alpha, beta, gamma)')
    p.add_argument("--alpha", type=Exact(), default=None, metavar="EXACT",
                   help="teacher's critic step size, exact (1/5) or 'alpha' to keep it symbolic "
                        "(default: symbolic, a symbol distinct from beta)")
    p.add_argument("--beta", type=Exact(), default=None, metavar="EXACT",
                   help="actor step size (actor-critic), as --alpha (default: symbolic)")
    p.add_argument("--out", type=Folder(), default=DEFAULT_OUT, metavar="DIR", help=f"report directory ({DEFAULT_OUT})")
    p.add_argument("--config", type=Path(), metavar="FILE.toml", default=None,
                   help="read options from a TOML file (keys: the long option names; flags override)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with the result as the last line (keys algorithm, general, concrete, "
                        "residual, report, ...; with --algorithm all: {\"algorithms\": [...], \"all_proven\": bool})")
    wang_cmd.add_prove_arguments(p)


def run(args) -> int:
    if args.layout == "wang2025" or args.stacked:
        return wang_cmd.run_prove(args)
    a = parse_step(args.alpha, "alpha", None)
    b = parse_step(args.beta, "beta", None)
    if args.algorithm == "all" and args.weights:
        raise InputError("algorithm", "--weights needs one algorithm (the layout fixes the size), not all")
    algs = algorithms.names() if args.algorithm == "all" else (args.algorithm,)
    results, lines = [], []
    with progress_bar(total=len(algs), desc="prove", disable=args.json) as bar:
        for alg in algs:
            res = P.prove(alg, weights=args.weights, alpha=a, beta=b)
            one = dict(vars(args), algorithm=alg)
            command = reproduce_command("prove", type(args)(**one), add_arguments, always=("algorithm",))
            report = os.path.join(args.out, P.report_name(res) + ".md")
            atomic_write(report, P.render(res, run_header(command, config_of(args))))
            r = P.summary(res, report)
            results.append(r)
            sizes = ", ".join(f"({c['d']},{c['n']})" for c in r["concrete"] if c["ok"])
            bad = [c for c in r["concrete"] if not c["ok"]]
            scope = "every d, n" if r["weights"] is None else f"d = {r['concrete'][0]['d']}, every n"
            lines.append(f"prove {alg}: {'PROVEN' if r['general'] else 'NOT PROVEN'} ({scope}; "
                         f"concrete {sizes or 'none'}{'; failed ' + str(bad) if bad else ''}) in {r['seconds']:.1f} s; "
                         f"report {r['report']}")
            if r["residual"]:
                lines.append(f"  residual: {r['residual']}")
            if r.get("counterexample"):
                c = r["counterexample"]
                lines.append(f"  counterexample (n = {c['n']}, alpha = {c['alpha']}, beta = {c['beta']}, "
                             f"gamma = {c['gamma']}): block {c['block']} != teacher {c['teacher']} (JSON: counterexample)")
            for name, part in r.get("lemmas", {}).items():
                lines.append(f"  {name}: {'proven' if part['proven'] else 'NOT PROVEN'}: {part['statement']}")
            bar.update(1)
    ok = all(r["general"] for r in results)
    obj = results[0] if len(results) == 1 else {"algorithms": results, "all_proven": ok}
    emit(lines, obj, args.json)
    return 0 if ok else 1
