"""The fast builders make exactly what the constructors make."""

from __future__ import annotations

import dataclasses

import pytest

from castore_edu import EventDetail, PushEventResult
from castore_edu.core.hot_paths import build_event, build_push_result, with_timestamp


def test_build_event_equals_the_constructor() -> None:
    built = build_event("pikachu", 3, "LEVELED_UP", "2024", {"level": 2}, {"by": "ash"})
    made = EventDetail(
        aggregate_id="pikachu",
        version=3,
        type="LEVELED_UP",
        timestamp="2024",
        payload={"level": 2},
        metadata={"by": "ash"},
    )
    assert built == made and hash(built.aggregate_id) == hash(made.aggregate_id)
    assert repr(built) == repr(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.version = 4  # type: ignore[misc]


def test_build_push_result_equals_the_constructor() -> None:
    event = EventDetail(aggregate_id="a", version=1, type="T")
    assert build_push_result(event, {"v": 1}) == PushEventResult(event=event, next_aggregate={"v": 1})


def test_with_timestamp_is_replace() -> None:
    event = EventDetail(aggregate_id="a", version=1, type="T", payload=[1])
    assert with_timestamp(event, "2024") == dataclasses.replace(event, timestamp="2024")
