"""Symbolic side of the toolkit (SymPy only; imports nothing from ``numerics``).

``theory.layout`` and ``theory.spec`` describe prompts and blocks as data;
``theory.constructions`` is the single source of every construction's weight
tables; ``theory.rules`` holds the update rules in the prompt's terms;
``theory.algorithms`` ties them into records resolved once by name;
``theory.symbolic`` and ``theory.concrete`` prove the identities (every
dimension, and every entry a symbol at small sizes); ``theory.prove`` is the
logic of ``icrl-verify prove``.  ``numerics`` turns the tables into tensors;
it never re-types a matrix.
"""
