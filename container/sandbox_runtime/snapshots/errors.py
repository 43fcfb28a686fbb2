"""The exceptions the snapshot subsystem raises; callers branch on these types only."""

from __future__ import annotations


class SnapshotError(Exception):
    """A snapshot could not be taken, restored or imported; the message names the fix."""


class StoreUnavailable(SnapshotError):
    """The store could not be reached or refused the request (network, credentials, timeout).

    The supervisor must stop the boot on this: starting with an empty state while the store
    holds the real one would let the next snapshot bury it.
    """


class HeadConflict(SnapshotError):
    """Another writer moved HEAD since this one read it (the conditional write failed)."""


class ConfigError(SnapshotError):
    """The environment does not describe a usable store or key."""
