"""The one error the paper package raises for bad or missing result files."""

from whitebox.errors import UserError


class PaperInputError(UserError, ValueError):
    """A result file the paper needs is missing or malformed; the message is one line."""
