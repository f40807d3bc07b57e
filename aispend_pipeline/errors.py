"""Errors a user can act on: each names the source, the day or file line, and what to do.

They never carry a credential: messages name settings, not their values, and are scrubbed on
construction of any configured secret value a provider may have echoed.
"""

from __future__ import annotations

from datetime import date


class AispendError(Exception):
    """Base of every error the pipeline raises on purpose; its message is scrubbed of credentials."""

    def __init__(self, *args: object) -> None:
        from aispend_pipeline.core.secrets import scrub

        super().__init__(*(scrub(a) if isinstance(a, str) else a for a in args))


class SourceError(AispendError):
    """A billing source failed: which source, which day (or range) and what to do."""

    def __init__(self, source: str, message: str, day: date | str | None = None) -> None:
        self.source = source
        self.day = day
        where = f"{source} {day}" if day else source
        super().__init__(f"{where}: {message}")


class SourceAuthError(SourceError):
    """The provider rejected the credential (401/403)."""


class SourcePayloadError(SourceError):
    """The provider answered, but the payload does not have the shape we rely on."""


class SourceUnavailableError(SourceError):
    """The provider kept failing (5xx, 429, network) after every retry."""


class SeedError(AispendError):
    """A seed file row does not parse: the message names the file, the line and the field."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file, self.line, self.field = file, line, field
        where = file + (f" line {line}" if line else "") + (f" field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


class ValidationError(AispendError):
    """Rows broke a table's schema: the message names the source, the day and the field."""


def failure_message(source: str, exc: Exception) -> str:
    """What a failed source reports: a pipeline error's own message, else its type and first line (scrubbed)."""
    if isinstance(exc, AispendError):
        return str(exc)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return str(AispendError(f"{source}: unexpected {type(exc).__name__}: {first}"))
