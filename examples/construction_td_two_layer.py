"""The construction of construction-td-two-layer.toml as a Python record
(docs/architecture.md, "How to add a construction"): importing this module
registers it, so ``--algorithm td-two-layer`` names it."""
import sympy as sp

from theory import algorithms, rules
from theory.constructions import Construction
from theory.layout import Layout
from theory.spec import BlockSpec
from theory.symbols import gamma

ONE = sp.Integer(1)
LAYOUT = Layout(name="td-two-layer", context=(("phi", "d"), ("gphi_next", "d"), ("r", 1)),
                readout=(("r", -1),), query=("phi",))
RECORD = algorithms.Algorithm(
    name="td-two-layer", title="two masked layers of preconditioned TD(0)", data="mrp",
    spec=BlockSpec(LAYOUT, depth=2, tied=True, mask="context"),
    construction=Construction(p=((("phi", "phi"), -ONE), (("phi", "gphi_next"), ONE)),
                              v=((("r", "r"), ONE),), preconditioned=True),
    context=(("phi", ONE, "phi"), ("gphi_next", gamma, "phi_next"), ("r", ONE, "r")),
    rule=rules.semi_gradient, features="state", behaviour="uniform", acts_with=None, steps=("C",),
    statement="w_{l+1} = w_l + (1/n) C_l sum_j (r_j + gamma w_l.phi'_j - w_l.phi_j) phi_j")
algorithms.register(RECORD, replace=True)
