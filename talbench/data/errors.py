"""Load-time data errors: every message names the file, the video and the field at fault."""

from __future__ import annotations

from pathlib import Path


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
