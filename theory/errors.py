"""The one exception type for bad input (STYLE.md practice 6).

It lives in the lowest layer (``theory``) so that the symbolic side, which
imports nothing from ``numerics``, and every layer of ``numerics`` raise the
same type; the command line turns it into exit status 2 and one line on
stderr.
"""


class InputError(ValueError):
    """Bad input, raised eagerly at the boundary.

    The message names the field, the value and what was expected, on one
    line; the CLI prints it to stderr and exits with status 2.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
