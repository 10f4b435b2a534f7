"""The base of every error a user can cause and fix: the CLI prints it as one line.

Pure Python, so that every command (and the Snakefile) can import it without loading torch.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake or missing piece the user can fix; ``str()`` is one line naming it."""


class ConfigError(UserError, ValueError):
    """A mistake in the user's configuration (config.yaml, a command's options)."""
