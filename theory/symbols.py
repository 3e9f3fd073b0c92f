"""The SymPy symbols shared by every symbolic module: the teacher's step sizes
``alpha`` (critic) and ``beta`` (actor), the discount ``gamma``, the feature
dimension ``d`` and the context length ``n`` (both symbolic in the general
proofs), and the scale ``c`` of the symmetry family."""
import sympy as sp

alpha, beta, gamma = sp.symbols("alpha beta gamma", real=True)
d = sp.Symbol("d", integer=True, positive=True)
n = sp.Symbol("n", integer=True, positive=True)
c = sp.Symbol("c", nonzero=True)
#: TD(lambda)'s lambda (the decay of a ``context`` mask).
lam = sp.Symbol("lambda", real=True)

#: Step-size symbols a construction may use, by name (the keys of ``hp`` in
#: update rules and of ``--alpha``/``--beta`` on the command line).
STEP_SIZES = {"alpha": alpha, "beta": beta}
