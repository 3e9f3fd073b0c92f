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

Softmax records (kind softmax: softmax-td, softmax-td-shift, or a
--construction file of kind softmax; Xie et al. 2026): Theorem 1 (one layer
is one iteration of weighted softmax TD) and Lemma 1 (one head plus the
token shift equals two heads) proven for every d and n, with the base case
and induction over L tied or untied layers; JSON keys theorem_1 and lemma_1
({proven, covers, assumes}), faults, concrete, sentence.  A file whose
weights, mask or shift differ from the construction exits 1 with an exact
counterexample (docs/theory.md, "Softmax attention").

Writes reports/proofs/ALGORITHM.md (or ALGORITHM-STEM.md with --weights):
the derivation step by step in LaTeX.  Exit 0 proven, 1 the weights do not
implement the update (residual printed), 2 malformed input.
"""
from __future__ import annotations

import os

import shlex

from numerics.commands.cli import config_of, emit, progress_bar
from numerics.commands.records import add_record_arguments, record_from_args
from numerics.io.commandline import reproduce_command
from numerics.io.files import atomic_write
from numerics.io.options import Exact, Folder, Path
from numerics.io.report import run_header
from theory import algorithms
from theory import prove as P
from theory import softmax as SM
from theory import stacked
from theory.errors import InputError
from theory.parse import parse_step

DEFAULT_OUT = os.path.join("reports", "proofs")


def add_arguments(p):
    p.add_argument("--algorithm", choices=tuple(algorithms.names()) + ("all",), default="sarsa",
                   help="record whose construction is proven (any registered one), or all (default sarsa)")
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
    p.add_argument("--stacked", action="store_true",
                   help="decide whether L stacked copies of Theorem 3.1's block compute L batch steps (every L): "
                        "proven, or refuted with an exact counterexample (value-layout algorithms)")
    add_record_arguments(p)


def _records(args):
    if str(args.algorithm) == "all" and not args.construction:
        kinds = ("mrp",) if args.layout == "wang2025" else ("mdp", "mrp")
        # --layout wang2025 (deprecated) names Wang et al.'s records: the linear kind only
        return [algorithms.get(a) for a in algorithms.names() if algorithms.get(a).data in kinds
                and (args.layout != "wang2025" or algorithms.get(a).spec.kind == "linear")]
    return [record_from_args(args)]


def run(args) -> int:
    if args.stacked:
        return run_stacked(args)
    a = parse_step(args.alpha, "alpha", None)
    b = parse_step(args.beta, "beta", None)
    if str(args.algorithm) == "all" and args.weights:
        raise InputError("algorithm", "--weights needs one algorithm (the layout fixes the size), not all")
    records = _records(args)
    results, lines = [], []
    with progress_bar(total=len(records), desc="prove", disable=args.json) as bar:
        for record in records:
            alg = record.name
            if record.spec.kind == "softmax":   # Xie et al. (2026): Theorem 1 and Lemma 1 (theory.softmax)
                results.append(_prove_softmax(args, record, a, b, lines))
                bar.update(1)
                continue
            res = P.prove(record, weights=args.weights, alpha=a, beta=b)
            if args.construction:
                command = shlex.join(["icrl-verify", "prove", "--construction", str(args.construction)])
            else:
                one = dict(vars(args), algorithm=alg, layout="paper")
                command = reproduce_command("prove", type(args)(**one), add_arguments, always=("algorithm",))
            report = os.path.join(args.out, P.report_name(res) + ".md")
            atomic_write(report, P.render(res, run_header(command, config_of(args))))
            r = P.summary(res, report)
            results.append(r)
            if record.data == "mrp":
                lines += _layer_lines(alg, r, res)
                bar.update(1)
                continue
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
    ok = all(r["general"] for r in results) and all(r.get("faults_refused", True) for r in results)
    obj = results[0] if len(results) == 1 else {"algorithms": results, "all_proven": ok}
    emit(lines, obj, args.json)
    return 0 if ok else 1


def _prove_softmax(args, record, a, b, lines) -> dict:
    """One softmax record (kind ``softmax``): :func:`theory.softmax.prove_record`,
    its report and JSON; appends the human-readable lines."""
    if args.weights or a is not None or b is not None:
        raise InputError("weights" if args.weights else "alpha",
                         f"{record.name!r} is proven with a free step per layer; other weights go in a construction "
                         f"file (--construction FILE.toml with kind = \"softmax\")")
    res = SM.prove_record(record)
    if args.construction:
        command = shlex.join(["icrl-verify", "prove", "--construction", str(args.construction)])
    else:
        command = shlex.join(["icrl-verify", "prove", "--algorithm", record.name])
    report = os.path.join(args.out, record.name + ".md")
    atomic_write(report, SM.render(res, run_header(command, config_of(args) | {"algorithm": record.name})))
    r = SM.summary(res, report)
    t1, l1 = r["theorem_1"]["proven"], r["lemma_1"]["proven"]
    refused = sum(f["general_refused"] and f["concrete_refused"] for f in r["faults"])
    lines.append(f"prove {record.name}: {'PROVEN' if r['general'] else 'NOT PROVEN'} (Theorem 1: "
                 f"{'proven' if t1 else 'not proven'}; Lemma 1: {'proven' if l1 else 'not proven'}"
                 + (f"; planted faults refused {refused}/{len(r['faults'])}" if r["faults"] else "")
                 + f") in {r['seconds']:.1f} s; report {report}")
    lines.append(f"  {r['sentence']}")
    if r["counterexample"]:
        lines.append(f"  counterexample: {r['counterexample']} (JSON: counterexample)")
    return r


def _layer_lines(name, r, res) -> list[str]:
    refused = sum(f["general_refused"] and f["concrete_refused"] for f in r["faults"])
    lines = [f"prove {name}: {'PROVEN' if r['general'] else 'NOT PROVEN'} (one layer, every d and n; base case; "
             f"induction: every L; concrete sizes) in {r['seconds']:.1f} s; planted faults refused "
             f"{refused}/{len(r['faults'])}; report {r['report']}"]
    if r["residual"]:
        lines.append(f"  residual: {r['residual']}")
    if res.get("counterexample"):
        lines.append(f"  counterexample: {res['counterexample']}")
    return lines


def run_stacked(args) -> int:
    """``prove --stacked``: do L stacked copies of Theorem 3.1's block compute L batch steps?"""
    if args.weights:
        raise InputError("weights", "--weights is for the single-layer records; --stacked proves the constructions")
    if args.layout != "paper" or args.construction:
        raise InputError("stacked", "--stacked decides Liang & Lai's block; it does not combine with --layout or "
                                    "--construction")
    algorithm = str(args.algorithm)
    names = stacked.STACKABLE if algorithm == "all" else (algorithm,)
    results, lines = [], []
    with progress_bar(total=len(names), desc="prove", disable=args.json) as bar:
        for name in names:
            res = stacked.decide(name)
            command = shlex.join(["icrl-verify", "prove", "--stacked", "--algorithm", name])
            report = os.path.join(args.out, "stacked-" + name + ".md")
            atomic_write(report, stacked.render(res, run_header(command, config_of(args) | {"algorithm": name})))
            results.append(dict(res) | {"report": report, "command": command})
            lines.append(f"prove --stacked {name}: {'PROVEN' if res['holds'] else 'REFUTED'} (one block on the "
                         f"whole prompt: {'proven' if res['one_block'] else 'NOT proven'}); report {report}")
            if res["counterexample"]:
                lines.append(f"  counterexample: {res['counterexample']}")
            bar.update(1)
    ok = all(r["holds"] for r in results)
    obj = results[0] if len(results) == 1 else {"algorithms": results, "all_proven": ok}
    emit(lines, obj, args.json)
    return 0 if ok else 1
