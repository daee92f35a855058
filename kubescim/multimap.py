"""A key -> values index for keys that nearly always hold one value (a userName, an externalId).

The single value is kept bare rather than in a set of its own: a set costs about 216 bytes, more
than the rest of a user's index entries, and at 100,000 users that is 20 MB. A key whose last value
leaves is removed, so renames do not leave empty entries behind. Used by the gateway's index and
the operator's store alike (pure: no I/O)."""

from __future__ import annotations


class CompactMultiMap:
    def __init__(self) -> None:
        self._values: dict[str, str | tuple[str, ...]] = {}

    def add(self, key: str, value: str) -> None:
        current = self._values.get(key)
        if current is None:
            self._values[key] = value
        elif isinstance(current, str):
            if current != value:
                self._values[key] = (current, value)
        elif value not in current:
            self._values[key] = (*current, value)

    def discard(self, key: str, value: str) -> None:
        current = self._values.get(key)
        if current is None:
            return
        rest = tuple(v for v in ((current,) if isinstance(current, str) else current) if v != value)
        if not rest:
            del self._values[key]
        else:
            self._values[key] = rest[0] if len(rest) == 1 else rest

    def values_of(self, key: str) -> tuple[str, ...]:
        """The values under `key`, oldest first; () when there are none."""
        current = self._values.get(key)
        if current is None:
            return ()
        return (current,) if isinstance(current, str) else current

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)
