"""Symbolic side of the toolkit (SymPy only).

``theory.layout`` fixes the prompt layouts (named row blocks, sizes in units of
``d``); ``theory.constructions`` is the single source of every construction
(Theorems 3.1 and 3.3 and their variants) as block tables of SymPy
coefficients.  ``numerics`` turns those tables into tensors; it never re-types
a matrix.
"""
