"""Record stores behind the demo source systems, and the mutations tests make on them.

One :class:`StreamStore` per paged stream holds every served version in contract order:
change time (the instant), then natural key, ascending. Positions ``0 .. S-1`` are the
synthetic records (made on demand from their index), then the seed and malformed
records, then every version appended by a mutation, each with a change time later than
anything in the store, so the order stays sorted without ever being rebuilt.

In current-state mode (the default) a key's older versions are dead positions, skipped
when paging; a changed record therefore moves to the end and, with page numbers, the
record behind it slides back onto a page already read -- the realistic behaviour the
contract warns about. In change-log mode nothing dies and every version is served.

All methods are thread-safe: the servers read from their event-loop threads while tests
mutate from theirs.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rulewatch.demo import data

Entry = tuple[int, str, bytes, bool]  # (instant ms, key, JSON payload, is tombstone)


def dump(record: Any) -> bytes:
    """Compact UTF-8 JSON, Chinese left readable."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _permit_time(instant_ms: int, previous: Any) -> str:
    utc = isinstance(previous, str) and previous.endswith("Z")  # keep the record's own style
    return data.iso(instant_ms // 1000, utc)


@dataclass(frozen=True)
class StreamSpec:
    """What the store needs to know about a stream: its key and change-time field."""

    name: str
    system: str
    key_field: str
    change_field: str
    format_change: Callable[[int, Any], Any]  # (instant ms, previous value) -> wire value


PERMITS = StreamSpec(
    "permits.applications", "permits", "application_id", "updated_at", _permit_time
)
INSPECTIONS = StreamSpec(
    "enforcement.inspections",
    "enforcement",
    "inspection_no",
    "modified",
    lambda ms, _prev: data.local_stamp(ms // 1000),
)
DOCUMENTS = StreamSpec(
    "docreview.documents", "docreview", "doc_id", "last_modified_ms", lambda ms, _prev: ms
)
STREAMS = {spec.system: spec for spec in (PERMITS, INSPECTIONS, DOCUMENTS)}


class StreamStore:
    """Every served version of one stream, ordered by (change instant, natural key)."""

    def __init__(
        self,
        spec: StreamSpec,
        versions: Sequence[data.Version],
        malformed: Sequence[data.MalformedRecord] = (),
        synthetic: data.Synthetic | None = None,
        change_log: bool = False,
    ) -> None:
        self.spec = spec
        self.change_log = change_log
        self._lock = threading.RLock()
        if synthetic is not None and synthetic.count == 0:
            synthetic = None
        self._syn = synthetic
        self._s = synthetic.count if synthetic else 0
        entries: list[Entry] = [
            (v.instant_ms, v.key, dump(v.record), v.is_tombstone) for v in versions
        ]
        self._frozen: set[str] = set()  # malformed keys: never touched into validity
        for n, bad in enumerate(malformed):
            key = bad.key if bad.key else f"\x00malformed-{spec.name}-{n}"
            self._frozen.add(key)
            entries.append((bad.instant_ms, key, dump(bad.record), False))
        entries.sort(key=lambda e: (e[0], e[1]))
        if synthetic and entries and synthetic.instant_ms(self._s - 1) >= entries[0][0]:
            raise ValueError("synthetic records must all change before the seed records")
        self._mat: list[Entry] = entries
        self._size = self._s + len(entries)
        self._dead: list[int] = []  # sorted dead positions (current-state mode)
        self._dead_set: set[int] = set()
        self._pos: dict[str, int] = {}  # newest position of every non-synthetic key
        for offset, entry in enumerate(entries):
            self._supersede(entry[1], self._s + offset)
        self._dead.sort()
        last = entries[-1][0] if entries else (synthetic.instant_ms(self._s - 1) if self._s else 0)
        # Changes made through the API happen after the seed data's last day (DEMO_TODAY 18:00).
        self._clock_ms = max(last, data.to_ms(data.DATA_HORIZON))

    # --- positions ----------------------------------------------------------------------

    def _supersede(self, key: str, position: int) -> None:
        """Make ``position`` the newest version of ``key``; in current state the old one dies."""
        old = self._position_of(key)
        self._pos[key] = position
        if old is not None and not self.change_log:
            self._dead.append(old)
            self._dead_set.add(old)

    def _position_of(self, key: str) -> int | None:
        position = self._pos.get(key)
        if position is None and self._syn is not None:
            position = self._syn.index_of(key)
        return position

    def _instant(self, p: int) -> int:
        return self._syn.instant_ms(p) if p < self._s else self._mat[p - self._s][0]  # type: ignore[union-attr]

    def _key(self, p: int) -> str:
        return self._syn.key(p) if p < self._s else self._mat[p - self._s][1]  # type: ignore[union-attr]

    def _payload(self, p: int) -> bytes:
        return self._syn.payload(p) if p < self._s else self._mat[p - self._s][2]  # type: ignore[union-attr]

    def _is_tombstone(self, p: int) -> bool:
        return p >= self._s and self._mat[p - self._s][3]

    def _first_at_or_after(self, since_ms: int) -> int:
        lo, hi = 0, self._size
        while lo < hi:
            mid = (lo + hi) // 2
            if self._instant(mid) < since_ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _first_after(self, instant_ms: int, key: str) -> int:
        lo, hi = 0, self._size
        while lo < hi:
            mid = (lo + hi) // 2
            t = self._instant(mid)
            if t < instant_ms or (t == instant_ms and self._key(mid) <= key):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _rank(self, p: int) -> int:
        """Live positions before ``p``."""
        return p - bisect_left(self._dead, p)

    def _select(self, k: int) -> int:
        """Position of the k-th live entry (0-based)."""
        lo, hi = k, min(self._size, k + len(self._dead))
        while lo < hi:  # least p with live entries in [0, p] > k
            mid = (lo + hi) // 2
            if mid + 1 - bisect_right(self._dead, mid) > k:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _collect(self, p: int, n: int) -> tuple[list[bytes], int, int]:
        """Up to ``n`` live payloads from ``p``; also the last position taken and the next."""
        out: list[bytes] = []
        size, dead, last = self._size, self._dead_set, -1
        syn_end = self._s
        while p < size and len(out) < n:
            if p not in dead:
                if p < syn_end:
                    out.append(self._syn.payload(p))  # type: ignore[union-attr]
                else:
                    out.append(self._mat[p - syn_end][2])
                last = p
            p += 1
        return out, last, p

    def _live_from(self, p: int) -> bool:
        while p < self._size:
            if p not in self._dead_set:
                return True
            p += 1
        return False

    # --- reading ------------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        """Records served in a full read (one per key in current-state mode)."""
        with self._lock:
            return self._size - len(self._dead)

    @property
    def version_count(self) -> int:
        """Every version held, dead ones included."""
        return self._size

    @property
    def last_instant_ms(self) -> int:
        """The newest change time in the store."""
        return self._clock_ms

    def page_after(
        self, after: tuple[int, str] | None, since_ms: int | None, limit: int
    ) -> tuple[list[bytes], tuple[int, str] | None]:
        """Keyset paging: records after ``after`` (else from ``since_ms``), and the next cursor."""
        with self._lock:
            if after is not None:
                start = self._first_after(*after)
            elif since_ms is not None:
                start = self._first_at_or_after(since_ms)
            else:
                start = 0
            items, last, end = self._collect(start, limit)
            if not items or not self._live_from(end):
                return items, None
            return items, (self._instant(last), self._key(last))

    def page_number(
        self, since_ms: int | None, page: int, size: int
    ) -> tuple[int, list[bytes], bool]:
        """Page-number paging over records changed at or after ``since_ms``.

        Returns the total matching, the page's payloads, and whether more pages follow.
        """
        with self._lock:
            start = 0 if since_ms is None else self._first_at_or_after(since_ms)
            first_rank = self._rank(start)
            total = self._size - len(self._dead) - first_rank
            offset = (page - 1) * size
            if offset >= total:
                return total, [], False
            items, _, _ = self._collect(self._select(first_rank + offset), size)
            return total, items, offset + len(items) < total

    def current(self, key: str) -> dict[str, Any] | None:
        """The newest version of ``key`` as a dict; None when unknown or deleted."""
        with self._lock:
            p = self._position_of(key)
            if p is None or self._is_tombstone(p):
                return None
            return json.loads(self._payload(p))

    def all_current(self) -> list[dict[str, Any]]:
        """Every live record, in feed order (for tests; O(n))."""
        with self._lock:
            items, _, _ = self._collect(0, self._size)
        return [json.loads(item) for item in items]

    # --- mutations ----------------------------------------------------------------------

    def _append(self, key: str, record: dict[str, Any], tombstone: bool = False) -> dict[str, Any]:
        self._clock_ms = (self._clock_ms // 1000 + 1) * 1000  # later than anything held
        field = self.spec.change_field
        record[field] = self.spec.format_change(self._clock_ms, record.get(field))
        position = self._size
        self._mat.append((self._clock_ms, key, dump(record), tombstone))
        self._size += 1
        old = self._position_of(key)
        self._pos[key] = position
        if old is not None and not self.change_log:
            insort(self._dead, old)
            self._dead_set.add(old)
        return record

    def mutate(self, key: str, **changes: Any) -> dict[str, Any]:
        """A new version of ``key`` with ``changes`` and a fresh change time; returns it."""
        with self._lock:
            record = self.current(key)
            if record is None:
                raise KeyError(f"{self.spec.name}: no current record {key!r}")
            if changes.get(self.spec.key_field, key) != key:
                raise ValueError(f"{self.spec.key_field} cannot change")
            record.update(changes)
            return self._append(key, record)

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """A new record (its change time is set); the key must not be live."""
        key = record.get(self.spec.key_field)
        if not isinstance(key, str) or not key:
            raise ValueError(f"{self.spec.key_field} is required")
        with self._lock:
            if self.current(key) is not None:
                raise KeyError(f"{self.spec.name}: {key!r} exists; use mutate")
            return self._append(key, dict(record))

    def delete(self, key: str) -> dict[str, Any]:
        """A tombstone ``{key, "deleted": true, change time}`` as the newest version."""
        with self._lock:
            if self.current(key) is None:
                raise KeyError(f"{self.spec.name}: no current record {key!r}")
            return self._append(key, {self.spec.key_field: key, "deleted": True}, tombstone=True)

    def touch(self, fraction: float) -> int:
        """Give ``fraction`` of the live records a new version, content unchanged.

        The records are spread evenly over the feed; tombstones, malformed records and
        (in a change log) superseded versions are left alone, so the count returned may
        fall a little short of the fraction there. Content stays as it was, so the
        figures do not move: a delta benchmark sees exactly these records again.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within 0..1")
        with self._lock:
            live = self._size - len(self._dead)
            wanted = min(live, round(live * fraction))
            if wanted == 0:
                return 0
            ranks = [j * live // wanted for j in range(wanted)]
            positions = self._positions_of_ranks(ranks)
            field = self.spec.change_field
            fresh: list[tuple[str, bytes]] = []
            for p in positions:
                key = self._key(p)
                if self._is_tombstone(p) or key in self._frozen or self._position_of(key) != p:
                    continue  # (in a change log, an older version is not the record's state)
                fresh.append((key, self._payload(p)))
            new_dead: list[int] = []
            for key, payload in fresh:
                record = json.loads(payload)
                self._clock_ms = (self._clock_ms // 1000 + 1) * 1000
                record[field] = self.spec.format_change(self._clock_ms, record.get(field))
                position = self._size
                self._mat.append((self._clock_ms, key, dump(record), False))
                self._size += 1
                old = self._position_of(key)
                self._pos[key] = position
                if old is not None and not self.change_log:
                    new_dead.append(old)
            if new_dead:
                self._dead.extend(new_dead)
                self._dead.sort()
                self._dead_set.update(new_dead)
            return len(fresh)

    def _positions_of_ranks(self, ranks: Sequence[int]) -> list[int]:
        if not self._dead:
            return list(ranks)
        if len(ranks) * 64 < self._size:
            return [self._select(r) for r in ranks]
        wanted = iter(ranks)
        target = next(wanted, None)
        out: list[int] = []
        rank = 0
        for p in range(self._size):
            if target is None:
                break
            if p in self._dead_set:
                continue
            if rank == target:
                out.append(p)
                target = next(wanted, None)
            rank += 1
        return out


class Roster:
    """The enforcement officers' roster: served whole every time, no paging."""

    def __init__(self, officers: Sequence[dict[str, Any]], malformed: Sequence[dict[str, Any]]):
        self._lock = threading.RLock()
        self._officers = [dict(o) for o in officers]
        self._malformed = [dict(o) for o in malformed]
        self._payload: bytes | None = None

    def payload(self) -> bytes:
        """``{"officers": [...]}`` as served (cached until the roster changes)."""
        with self._lock:
            if self._payload is None:
                self._payload = dump({"officers": self._officers + self._malformed})
            return self._payload

    def officers(self) -> list[dict[str, Any]]:
        """The well-formed entries, as served."""
        with self._lock:
            return [dict(o) for o in self._officers]

    def remove(self, officer_id: str) -> dict[str, Any]:
        """Take an officer off the roster (they left); returns the entry removed."""
        with self._lock:
            for n, officer in enumerate(self._officers):
                if officer["officer_id"] == officer_id:
                    self._payload = None
                    return self._officers.pop(n)
        raise KeyError(f"enforcement.officers: no officer {officer_id!r}")

    def add(self, officer: dict[str, Any]) -> dict[str, Any]:
        """Add an entry (or replace the one with its ``officer_id``); kept in id order."""
        with self._lock:
            self._officers = [o for o in self._officers if o["officer_id"] != officer["officer_id"]]
            self._officers.append(dict(officer))
            self._officers.sort(key=lambda o: o["officer_id"])
            self._payload = None
            return dict(officer)


class DemoWorld:
    """The three systems' data: one store per paged stream, the roster, the mutations."""

    def __init__(self, scale: int = 0, malformed: int = 0, change_log: bool = False) -> None:
        if scale < 0 or malformed < 0:
            raise ValueError("scale and malformed must be >= 0")
        self.scale, self.change_log = scale, change_log
        self.malformed: list[data.MalformedRecord] = data.malformed_records(malformed)
        base = data.base_versions()
        counts = data.split_scale(scale)
        self.stores: dict[str, StreamStore] = {}
        for system, spec in STREAMS.items():
            n = counts[spec.name]
            self.stores[system] = StreamStore(
                spec,
                base[spec.name],
                [m for m in self.malformed if m.stream == spec.name],
                data.SYNTHETIC[spec.name](n) if n else None,
                change_log,
            )
        self.roster = Roster(
            data.officers_roster(),
            [m.record for m in self.malformed if m.stream == "enforcement.officers"],
        )

    def store(self, system: str) -> StreamStore:
        """The paged store of a system (``permits``, ``enforcement``, ``docreview``)."""
        try:
            return self.stores[system.split(".")[0]]
        except KeyError:
            raise KeyError(f"unknown system {system!r}; one of {sorted(self.stores)}") from None

    def mutate(self, system: str, key: str, **changes: Any) -> dict[str, Any]:
        """Change a record: a new version with a change time later than anything served."""
        return self.store(system).mutate(key, **changes)

    def add_record(self, system: str, record: dict[str, Any]) -> dict[str, Any]:
        """Add a new record to a system's paged stream."""
        return self.store(system).add(record)

    def current(self, system: str, key: str) -> dict[str, Any] | None:
        """The newest version of a record, None when unknown or deleted."""
        return self.store(system).current(key)

    def delete_document(self, doc_id: str) -> dict[str, Any]:
        """Delete a document: its tombstone becomes the newest version."""
        return self.stores["docreview"].delete(doc_id)

    def remove_officer(self, officer_id: str) -> dict[str, Any]:
        """An officer leaves: gone from the roster from the next request on."""
        return self.roster.remove(officer_id)

    def add_officer(
        self,
        officer_id: str,
        name: str,
        role: str = "officer",
        certified: bool = True,
        certificate_expires: str | None = "2028-12-31",
    ) -> dict[str, Any]:
        """Put an officer on the roster (replacing an entry with the same id)."""
        return self.roster.add(
            {
                "officer_id": officer_id,
                "name": name,
                "role": role,
                "certified": certified,
                "certificate_expires": certificate_expires,
            }
        )

    def touch_fraction(self, system: str, fraction: float) -> int:
        """Re-version ``fraction`` of a system's records, content unchanged (delta benchmarks)."""
        return self.store(system).touch(fraction)
