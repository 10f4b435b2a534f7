"""The one error the paper package raises for bad or missing result files."""


class PaperInputError(ValueError):
    """A result file the paper needs is missing or malformed; the message is one line."""
