"""The one exception type for data problems a user can cause and fix."""

from __future__ import annotations

from whitebox.errors import UserError


class DataError(UserError, RuntimeError):
    """A user-caused data problem (missing, corrupt, unreachable); str() is one line
    that names the cause and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` with whitespace runs collapsed to single spaces, cut to ``limit`` chars
    (used to quote a library's error inside our message)."""
    flat = " ".join(str(text).split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: limit - 3] + "..."
