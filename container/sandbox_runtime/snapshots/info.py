"""What the snapshot manager reports: generations, restore outcomes, its own status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .manifest import Summary


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    created_at: datetime
    size: int
    files: int
    reason: str
    generation: int

    @classmethod
    def from_summary(cls, summary: Summary) -> SnapshotInfo:
        return cls(
            id=summary.id,
            created_at=datetime.fromisoformat(summary.created_at),
            size=summary.size,
            files=summary.files,
            reason=summary.reason,
            generation=summary.generation,
        )


@dataclass(frozen=True)
class Refused:
    """A generation (or HEAD) that restore would not use, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class RestoreResult:
    snapshot: SnapshotInfo | None  # None: the store holds nothing yet (a valid first boot)
    refused: tuple[Refused, ...]  # newer generations skipped before `snapshot`, newest first
    files: int
    bytes: int

    @property
    def fell_back(self) -> bool:
        return bool(self.refused)

    @property
    def empty(self) -> bool:
        return self.snapshot is None


@dataclass(frozen=True)
class SnapshotStatus:
    last_id: str | None
    last_at: datetime | None
    pending: bool  # changes seen by watch() that no snapshot holds yet
    last_error: str | None
