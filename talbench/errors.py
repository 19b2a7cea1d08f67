"""The user errors: bad parameters (``ConfigError``) and bad data (``DataError``); and ``Terminated`` (SIGTERM).

Both are ``ValueError`` subclasses raised for user input; the CLI prints their message as one line and exits
with code 2. Every message names the file and the key (configuration) or the file, video and field (data).
Defined here, below every package, so that data, eval and the rest import them without importing each other."""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and key."""


class DataError(ValueError):
    """A data file is missing or malformed; the message names file, video and field."""

    @classmethod
    def at(
        cls, file: str | Path, problem: str, *, video: str | None = None, field: str | None = None
    ) -> DataError:
        """``DataError`` with the uniform message ``<file>: video '<video>', field '<field>': <problem>``."""
        where = [
            f"video '{video}'" if video is not None else None,
            f"field '{field}'" if field is not None else None,
        ]
        location = ", ".join(w for w in where if w)
        return cls(f"{file}: {location}: {problem}" if location else f"{file}: {problem}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the CLI's handler where the program is, like Ctrl-C's ``KeyboardInterrupt``: open
    MLflow runs end KILLED and atomic outputs in progress are not written."""
