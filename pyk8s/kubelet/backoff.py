"""Per-key exponential backoff with the semantics of upstream's flowcontrol.Backoff, as the kubelet uses it for
crash loops and image pulls: the first failure is retried at once and opens a 10 s window; a failure inside a
window waits it out and doubles it (capped at 5 min); an entry untouched for twice the cap is forgotten, so a
container that ran for 10 minutes starts over at 10 s. Times are passed in, so the arithmetic is testable.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_BACKOFF = 10.0
MAX_BACKOFF = 300.0


@dataclass
class _Entry:
    duration: float
    last_update: float


class Backoff:
    def __init__(self, initial: float = INITIAL_BACKOFF, maximum: float = MAX_BACKOFF) -> None:
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, event_time: float) -> bool:
        return event_time - entry.last_update > 2 * self.maximum

    def in_backoff_since(self, key: str, event_time: float, now: float) -> bool:
        """Whether a failure at `event_time` is still inside the key's window at `now`."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            return False
        return now - event_time < entry.duration

    def remaining(self, key: str, event_time: float, now: float) -> float:
        """Seconds until a failure at `event_time` may be retried (0 when it may be now)."""
        if not self.in_backoff_since(key, event_time, now):
            return 0.0
        return self._entries[key].duration - (now - event_time)

    def in_backoff_since_update(self, key: str, now: float) -> bool:
        """Whether the key's window, opened at its last retry, is still open at `now` (image pulls)."""
        entry = self._entries.get(key)
        return entry is not None and now - entry.last_update < entry.duration

    def remaining_since_update(self, key: str, now: float) -> float:
        entry = self._entries.get(key)
        return max(entry.duration - (now - entry.last_update), 0.0) if entry is not None else 0.0

    def duration(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.duration if entry is not None else 0.0

    def next(self, key: str, event_time: float, now: float) -> None:
        """Record a retry of a failure at `event_time`: open (or widen) the key's window."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.duration = min(entry.duration * 2, self.maximum)
            entry.last_update = now

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now - e.last_update > 2 * self.maximum]:
            del self._entries[key]
