"""The one exception type for bad input (STYLE.md practice 6)."""


class InputError(ValueError):
    """Bad input, raised eagerly at the boundary.

    The message names the field, the value and what was expected, on one
    line; the CLI prints it to stderr and exits with status 2.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
