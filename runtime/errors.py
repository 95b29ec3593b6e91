"""The runtime's exceptions: one hierarchy, one readable line each.

An app embedding the runtime catches :class:`RuntimeErrorBase` and knows it has seen every
failure the runtime reports on purpose: a bad artifact, a bad argument, a missing interpreter.
Each subclass also derives from the closest built-in (``ValueError``, ``LookupError``,
``ImportError``) so generic handlers keep working.
"""

from __future__ import annotations


class RuntimeErrorBase(Exception):
    """Base of every error the runtime raises on purpose."""

    def __init__(self, message: str) -> None:
        # One line, always: messages may quote file contents or ids with newlines in them.
        line = " ".join(str(message).split())
        super().__init__(line)

    def __str__(self) -> str:  # LookupError subclasses would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ArtifactError(RuntimeErrorBase, ValueError):
    """The artifact directory is missing, malformed, from another version or inconsistent."""


class ChecksumError(ArtifactError):
    """A file's SHA-256 does not match the manifest (corrupt, truncated or edited)."""


class UnknownIdError(RuntimeErrorBase, LookupError):
    """A user or item id is not in the artifact's id maps."""


class InvalidArgumentError(RuntimeErrorBase, ValueError):
    """An argument has the wrong type or value (k, history, backend name, ...)."""


class BackendUnavailable(RuntimeErrorBase, ImportError):
    """The requested interpreter is not installed or cannot run here."""


__all__ = [
    "ArtifactError",
    "BackendUnavailable",
    "ChecksumError",
    "InvalidArgumentError",
    "RuntimeErrorBase",
    "UnknownIdError",
]
