"""The ``icrl-verify`` command line: one module per command, each with
``add_arguments(parser)`` and ``run(args) -> int`` (validate, compute through
``numerics.analysis``, render, print)."""
