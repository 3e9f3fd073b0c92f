"""The paper's claims as executable properties (``pytest property_tests/``).

A package so that test modules are imported by qualified name and users can
reuse the strategies: ``from property_tests.strategies import mdps``.
"""
