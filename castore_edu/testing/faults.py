"""Fault injection: make storage and message channels fail on a script, the same way every run.

"What happens if publishing fails after the write?" is a question best answered by making it
happen. This module wraps a real adapter and lets a *schedule* decide, call by call, whether a
fault strikes:

    schedule = FaultSchedule.on_calls(2, 5)               # fail the 2nd and the 5th publish
    schedule = FaultSchedule.seeded(7, fail=0.1)          # each call fails with probability 0.1
    faulty = FaultyChannelAdapter.wrap(bus, schedule)     # the bus now publishes through it

A schedule is a pure function of the call number (1 for the first call, 2 for the second...). It
never looks at the clock, so a scenario replays identically, and two runs that make the same calls
(a connected store and a relay, say) meet exactly the same faults. Seeded schedules draw one random
number per call, in call order, from their own ``random.Random``.

The faults (:class:`Fault`) and what each does to a call:

========================  ==========================================  ============================
fault                     on a channel (``publish_message``)          on storage (writes)
========================  ==========================================  ============================
``FAIL``                  raises; nothing is delivered                raises; nothing is stored
``FAIL_AFTER``            delivered, *then* raises (a lost ack)       stored, *then* raises
``CRASH``                 the process dies before delivering          the process dies before writing
``CRASH_AFTER``           the process dies right after delivering     dies right after the commit
``DUPLICATE``             delivered twice                             (not a storage fault)
``REORDER``               held back, delivered after the next one     (not a storage fault)
========================  ==========================================  ============================

Failing calls raise :class:`InjectedFault`, an ordinary ``Exception`` that code may catch and retry.
"The process dies" raises :class:`SimulatedCrash`, a ``BaseException`` (like ``KeyboardInterrupt``):
``except Exception`` does not catch it, so it unwinds every retry loop up to the test or notebook,
which plays the operating system and starts a fresh "process" — new objects on the same storage.
Latency (``latency_ms``) is awaited through an injectable ``sleep``, so tests can make it free.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, TypeVar

from castore_edu.core.arguments import got, require_callable, require_duration
from castore_edu.core.events import AggregateIdsPage, EventDetail, GroupedEvent, LoggedEvent
from castore_edu.storage.protocol import require_ordered_log

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]


class Fault(Enum):
    """What goes wrong during one call. See the module docstring for the full table."""

    FAIL = "fail"
    FAIL_AFTER = "fail after"
    CRASH = "crash"
    CRASH_AFTER = "crash after"
    DUPLICATE = "duplicate"
    REORDER = "reorder"


STORAGE_FAULTS = frozenset({Fault.FAIL, Fault.FAIL_AFTER, Fault.CRASH, Fault.CRASH_AFTER})


class InjectedFault(Exception):
    """A failure a fault schedule injected: a refused publish, a database error…"""

    def __init__(self, operation: str, call: int, fault: Fault) -> None:
        super().__init__(f"injected fault: {operation} call #{call} ({fault.value})")
        self.operation = operation
        self.call = call
        self.fault = fault


class SimulatedCrash(BaseException):
    """The process died here. Not an ``Exception``: no retry loop may swallow it.

    Whoever catches it plays the operating system: it drops every object of the dead "process"
    and builds new ones on the same storage, as a restart would.
    """

    def __init__(self, where: str) -> None:
        super().__init__(f"simulated crash: {where}")
        self.where = where


class FaultSchedule:
    """Which fault, if any, strikes call number ``n`` (1, 2, 3...) — decided once per call.

    Every decision is remembered, so asking twice about a call gives the same answer and
    :meth:`decisions` can show the plan in advance.
    """

    def __init__(self, decide: Callable[[int], Fault | None]) -> None:
        require_callable("decide", decide, hint="decide(call_number) returns a Fault or None")
        self._decide = decide
        self._decided: list[Fault | None] = []

    def __call__(self, call: int) -> Fault | None:
        if not isinstance(call, int) or call < 1:
            raise ValueError(f"calls are numbered from 1, got {call!r}")
        # Decide in call order, so a seeded schedule draws the same numbers whatever is asked.
        while len(self._decided) < call:
            self._decided.append(self._decide(len(self._decided) + 1))
        return self._decided[call - 1]

    def decisions(self, calls: int) -> list[Fault | None]:
        """The faults of calls 1..``calls`` (``None`` for a call that goes through)."""
        return [self(call) for call in range(1, calls + 1)]

    def count(self, fault: Fault, calls: int) -> int:
        """How many of calls 1..``calls`` this ``fault`` strikes."""
        return self.decisions(calls).count(fault)

    @classmethod
    def never(cls) -> FaultSchedule:
        """No fault at all: the wrapped adapter behaves as if unwrapped."""
        return cls(lambda call: None)

    @classmethod
    def scripted(cls, faults: Mapping[int, Fault]) -> FaultSchedule:
        """Exactly these faults on exactly these calls: ``{2: Fault.FAIL, 3: Fault.DUPLICATE}``."""
        script = dict(faults)
        for call, fault in script.items():
            if not isinstance(call, int) or call < 1 or not isinstance(fault, Fault):
                raise ValueError(f"a script maps call numbers >= 1 to Faults, got {call!r}: {fault!r}")
        return cls(script.get)

    @classmethod
    def on_calls(cls, *calls: int, fault: Fault = Fault.FAIL) -> FaultSchedule:
        """``fault`` on each of ``calls``: ``FaultSchedule.on_calls(2, 5)`` fails the 2nd and 5th."""
        return cls.scripted({call: fault for call in calls})

    @classmethod
    def seeded(
        cls,
        seed: int | str | random.Random,
        *,
        fail: float = 0.0,
        fail_after: float = 0.0,
        crash: float = 0.0,
        crash_after: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
    ) -> FaultSchedule:
        """Each call meets each fault with the given probability (at most one fault per call).

        One ``random()`` draw per call picks the fault: the same seed and rates give the same
        faults on the same call numbers, in every run and on every adapter.
        """
        rates = {
            Fault.FAIL: fail,
            Fault.FAIL_AFTER: fail_after,
            Fault.CRASH: crash,
            Fault.CRASH_AFTER: crash_after,
            Fault.DUPLICATE: duplicate,
            Fault.REORDER: reorder,
        }
        for fault, rate in rates.items():
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"the {fault.value} rate must be a number between 0 and 1, got {rate!r}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {sum(rates.values()):g}; at most 1 fault per call")
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        thresholds: list[tuple[float, Fault]] = []
        total = 0.0
        for fault, rate in rates.items():
            if rate:
                total += rate
                thresholds.append((total, fault))

        def decide(call: int) -> Fault | None:
            draw = rng.random()
            return next((fault for threshold, fault in thresholds if draw < threshold), None)

        return cls(decide)


@dataclass(frozen=True)
class FaultRecord:
    """One call a faulty adapter saw: its number, what it carried and the fault that struck."""

    call: int
    operation: str
    subject: Any
    fault: Fault | None


def check_schedule(name: str, schedule: object) -> None:
    """Refuse what is neither ``None`` nor a :class:`FaultSchedule` (a dict of faults is the
    likely slip: it needs ``FaultSchedule.scripted``)."""
    if schedule is None or isinstance(schedule, FaultSchedule):
        return
    hint = ". Hint: FaultSchedule.scripted({2: Fault.FAIL})" if isinstance(schedule, dict) else ""
    raise TypeError(f"{name} must be a FaultSchedule or None, got {got(schedule)}{hint}")


class _Faulty:
    """What both wrappers share: the inner adapter (which answers for every attribute the wrapper
    does not define), counting calls, consulting the schedule, awaiting latency."""

    def __init__(self, inner: Any, schedule: FaultSchedule | None, latency_ms: float, sleep: Sleep) -> None:
        require_duration("latency_ms", latency_ms, unit="milliseconds")
        require_callable("sleep", sleep)
        check_schedule("schedule", schedule)
        self.inner = inner
        self.schedule = schedule if schedule is not None else FaultSchedule.never()
        self.latency_ms = latency_ms
        self.sleep = sleep
        self.calls = 0
        self.history: list[FaultRecord] = []

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, pickle): do not recurse
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r}, calls={self.calls})"

    async def _next_call(self, operation: str, subject: Any) -> FaultRecord:
        self.calls += 1
        record = FaultRecord(self.calls, operation, subject, self.schedule(self.calls))
        self.history.append(record)
        if self.latency_ms:
            await self.sleep(self.latency_ms / 1000)
        return record

    @staticmethod
    def _strike(record: FaultRecord, moment: str) -> None:
        """Raise what the call's fault raises at ``moment``: "before" or "after" its work."""
        crash, fail = (
            (Fault.CRASH, Fault.FAIL) if moment == "before" else (Fault.CRASH_AFTER, Fault.FAIL_AFTER)
        )
        if record.fault is crash:
            raise SimulatedCrash(f"{moment} {record.operation} #{record.call}")
        if record.fault is fail:
            raise InjectedFault(record.operation, record.call, record.fault)

    def faults(self) -> list[FaultRecord]:
        """The calls a fault struck, in order."""
        return [record for record in self.history if record.fault is not None]


class FaultyChannelAdapter(_Faulty):
    """A message channel adapter that publishes through ``inner``, except when the schedule says.

    Everything else (``on``, ``worker``, ``wait_idle``, ``dead_letters``...) is the inner adapter's.
    """

    def __init__(
        self,
        inner: Any,
        schedule: FaultSchedule | None = None,
        *,
        latency_ms: float = 0.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(inner, schedule, latency_ms, sleep)
        self.held: list[tuple[Any, bool]] = []  # messages REORDER holds back, with their replay flag
        self.deliveries = 0  # messages actually handed to the inner adapter

    @classmethod
    def wrap(
        cls, channel: Any, schedule: FaultSchedule | None = None, **options: Any
    ) -> FaultyChannelAdapter:
        """Put a faulty adapter between ``channel`` and its current adapter, and return it."""
        faulty = cls(channel.get_message_channel_adapter(), schedule, **options)
        channel.message_channel_adapter = faulty
        return faulty

    async def publish_message(self, message: Any, *, replay: bool = False) -> None:
        record = await self._next_call("publish", message)
        self._strike(record, "before")
        if record.fault is Fault.REORDER:
            self.held.append((message, replay))
            return
        await self._deliver(message, replay)
        if record.fault is Fault.DUPLICATE:
            await self._deliver(message, replay)
        await self.release_held()  # what was held back arrives after this message
        self._strike(record, "after")

    async def publish_messages(self, messages: Sequence[Any], *, replay: bool = False) -> None:
        """One call per message, so each may meet its own fault."""
        for message in messages:
            await self.publish_message(message, replay=replay)

    async def release_held(self) -> None:
        """Deliver every message ``REORDER`` held back (call it at the end of a scenario)."""
        while self.held:
            message, replay = self.held.pop(0)
            await self._deliver(message, replay)

    async def _deliver(self, message: Any, replay: bool) -> None:
        await self.inner.publish_message(message, replay=replay)
        self.deliveries += 1


def unwrap_storage(adapter: Any) -> Any:
    """The real adapter under any number of :class:`FaultyStorageAdapter` layers."""
    while isinstance(adapter, FaultyStorageAdapter):
        adapter = adapter.inner
    return adapter


class FaultyStorageAdapter(_Faulty):
    """A storage adapter whose writes (``push_event``, ``push_event_group``) fail on a schedule.

    ``reads`` is a second schedule for ``get_events`` and ``list_aggregate_ids`` (only ``FAIL`` and
    ``CRASH`` make sense there). The ordered log (``read_log``, ``last_position``) is the inner
    adapter's, passed through untouched (no fault strikes it: the log is what survives), and so is
    every other attribute.
    """

    def __init__(
        self,
        inner: Any,
        writes: FaultSchedule | None = None,
        *,
        reads: FaultSchedule | None = None,
        latency_ms: float = 0.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        check_schedule("writes", writes)
        check_schedule("reads", reads)
        super().__init__(inner, writes, latency_ms, sleep)
        self.reads = reads if reads is not None else FaultSchedule.never()
        self.read_calls = 0

    async def _write(self, operation: str, subject: Any, write: Callable[[], Awaitable[T]]) -> T:
        record = await self._next_call(operation, subject)
        if record.fault is not None and record.fault not in STORAGE_FAULTS:
            raise ValueError(f"{record.fault.value} is not a storage fault (call #{record.call})")
        self._strike(record, "before")
        result = await write()
        self._strike(record, "after")
        return result

    async def _read(self, operation: str, read: Callable[[], Awaitable[T]]) -> T:
        self.read_calls += 1
        fault = self.reads(self.read_calls)
        if self.latency_ms:
            await self.sleep(self.latency_ms / 1000)
        if fault in (Fault.CRASH, Fault.CRASH_AFTER):
            raise SimulatedCrash(f"during {operation} #{self.read_calls}")
        if fault is not None:
            raise InjectedFault(operation, self.read_calls, fault)
        return await read()

    async def push_event(
        self, event: EventDetail, *, event_store_id: str, force: bool = False
    ) -> EventDetail:
        return await self._write(
            "push_event",
            event,
            lambda: self.inner.push_event(event, event_store_id=event_store_id, force=force),
        )

    def group_event(self, event: EventDetail) -> GroupedEvent:
        return GroupedEvent(event=event, event_storage_adapter=self)

    async def push_event_group(
        self, grouped_events: Sequence[GroupedEvent], *, force: bool = False
    ) -> list[EventDetail]:
        """The whole group is one call. The inner adapter gets grouped events that point to the
        real adapters, so its own checks (same database, same kind) still apply."""
        unwrapped = [
            replace(grouped, event_storage_adapter=unwrap_storage(grouped.event_storage_adapter))
            for grouped in grouped_events
        ]
        return await self._write(
            "push_event_group",
            [grouped.event for grouped in grouped_events],
            lambda: self.inner.push_event_group(unwrapped, force=force),
        )

    async def get_events(self, aggregate_id: str, **options: Any) -> list[EventDetail]:
        return await self._read("get_events", lambda: self.inner.get_events(aggregate_id, **options))

    async def list_aggregate_ids(self, **options: Any) -> AggregateIdsPage:
        return await self._read("list_aggregate_ids", lambda: self.inner.list_aggregate_ids(**options))

    async def read_log(self, *, after_position: int = 0, limit: int | None = None) -> list[LoggedEvent]:
        return await require_ordered_log(self.inner).read_log(after_position=after_position, limit=limit)

    async def last_position(self) -> int:
        return await require_ordered_log(self.inner).last_position()
