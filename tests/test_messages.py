"""Messages and their guards, as Castore's behave (docs/api.md §6)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from castore_edu.messaging.messages import (
    AggregateExistsMessage,
    NotificationMessage,
    StateCarryingMessage,
    is_aggregate_exists_message,
    is_event_carrying_message,
    is_notification_message,
    is_state_carrying_message,
)
from tests.fixtures_pokemon import appeared

GUARDS = (
    is_aggregate_exists_message,
    is_event_carrying_message,
    is_notification_message,
    is_state_carrying_message,
)


def verdicts(message: object) -> tuple[bool, ...]:
    return tuple(guard(message) for guard in GUARDS)


def test_aggregate_exists_message_is_only_that() -> None:
    message = AggregateExistsMessage("POKEMONS", "pikachuId", "2022")
    assert verdicts(message) == (True, False, False, False)


def test_notification_message_carries_an_event_and_no_aggregate() -> None:
    message = NotificationMessage(event_store_id="POKEMONS", event=appeared)
    assert verdicts(message) == (False, True, True, False)


def test_state_carrying_message_carries_an_event_and_an_aggregate_even_none() -> None:
    assert verdicts(StateCarryingMessage("POKEMONS", appeared, {"level": 42})) == (False, True, False, True)
    assert verdicts(StateCarryingMessage("POKEMONS", appeared, None)) == (False, True, False, True)


def test_guards_look_at_the_shape_not_the_class() -> None:
    assert is_state_carrying_message(
        SimpleNamespace(event_store_id="POKEMONS", event=appeared, aggregate=None)
    )
    assert is_aggregate_exists_message({"aggregate_id": "x"}) is False  # a dict has no attributes


def test_messages_are_frozen_and_compare_by_value() -> None:
    message = NotificationMessage("POKEMONS", appeared)
    assert message == NotificationMessage("POKEMONS", appeared)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.event_store_id = "TRAINERS"  # type: ignore[misc]
    assert AggregateExistsMessage("POKEMONS", "pikachuId").initial_event_timestamp is None
