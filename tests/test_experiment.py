"""The side-by-side experiment, and the property test of the whole failure story.

Over 1,000 seeded random fault schedules: through the relay no stored event is ever lost and the
idempotent read model always equals the store; through the connected store the losses are
measured — and predicted exactly from the schedule, which proves they are real.
"""

from __future__ import annotations

import random

import pytest

from castore_edu.course.experiment import (
    FaultRates,
    run_connected,
    run_experiment,
    run_relay,
    seeded_workload,
)
from castore_edu.testing.faults import Fault, FaultSchedule

pytestmark = pytest.mark.anyio

SCHEDULES = 1_000


def test_the_workload_is_seeded_and_valid() -> None:
    events = seeded_workload(60, seed=4, aggregates=3)
    assert events == seeded_workload(60, seed=4, aggregates=3)
    assert events != seeded_workload(60, seed=5, aggregates=3)
    versions: dict[str, int] = {}
    for event in events:
        versions[event.aggregate_id] = versions.get(event.aggregate_id, 0) + 1
        assert event.version == versions[event.aggregate_id]
        assert event.type == ("POKEMON_APPEARED" if event.version == 1 else "POKEMON_LEVELED_UP")
    assert sorted(versions) == ["bulbasaur", "charmander", "pikachu"]
    assert len({event.aggregate_id for event in seeded_workload(400, aggregates=10)}) == 10
    with pytest.raises(ValueError):
        seeded_workload(-1)


async def test_without_faults_both_paths_deliver_everything_once() -> None:
    result = await run_experiment(pushes=40, rates=FaultRates(), seed=1)
    for path in (result.connected, result.relay):
        assert (
            path.stored_events,
            path.delivered_messages,
            path.lost_messages,
            path.duplicated_messages,
        ) == (40, 40, 0, 0)
        assert path.read_model_equals_store and path.errors_seen == path.crashes == 0


async def test_same_arguments_same_result() -> None:
    rates = FaultRates(fail=0.1, lose_ack=0.05, duplicate=0.05, crash=0.05)
    first = await run_experiment(pushes=80, rates=rates, seed=7)
    assert await run_experiment(pushes=80, rates=rates, seed=7) == first
    assert await run_experiment(pushes=80, rates=rates, seed=8) != first


async def test_the_result_table_shows_both_paths() -> None:
    result = await run_experiment(pushes=50, rates=FaultRates(fail=0.2), seed=2)
    lines = result.table().splitlines()
    assert lines[0].split() == ["connected", "store", "relay"]
    assert lines[1].split() == ["stored", "events", "50", "50"]
    assert lines[3].split()[:2] == ["lost", "messages"] and lines[3].split()[-1] == "0"
    assert lines[5].split() == ["read", "model", "equals", "store", "False", "True"]


async def test_impossible_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        await run_experiment(pushes=5, rates=FaultRates(fail=0.6, crash=0.6))


def random_rates(rng: random.Random) -> FaultRates:
    return FaultRates(
        fail=rng.choice([0.0, rng.uniform(0, 0.3)]),
        lose_ack=rng.choice([0.0, rng.uniform(0, 0.2)]),
        duplicate=rng.choice([0.0, rng.uniform(0, 0.2)]),
        crash=rng.choice([0.0, rng.uniform(0, 0.2)]),
    )


async def test_property_the_relay_never_loses_and_the_connected_store_loses_what_the_schedule_predicts() -> (
    None
):
    rng = random.Random("property")
    total_lost = runs_with_losses = runs_with_relay_duplicates = 0
    for seed in range(SCHEDULES):
        rates = random_rates(rng)
        events = seeded_workload(rng.randint(1, 25), seed, aggregates=rng.randint(1, 6))
        pushes = len(events)

        relay = await run_relay(events, rates.schedule(seed), batch_size=rng.randint(1, 5))
        assert relay.stored_events == pushes
        assert relay.lost_messages == 0, (seed, rates)
        assert relay.read_model_equals_store, (seed, rates)
        assert relay.delivered_messages == pushes + relay.duplicated_messages
        runs_with_relay_duplicates += relay.duplicated_messages > 0

        connected = await run_connected(events, rates.schedule(seed))
        decisions = rates.schedule(seed).decisions(pushes)  # publish n meets decision n
        lost = decisions.count(Fault.FAIL) + decisions.count(Fault.CRASH)
        assert connected.stored_events == pushes
        assert connected.lost_messages == lost, (seed, rates)
        assert connected.duplicated_messages == decisions.count(Fault.DUPLICATE)
        assert connected.delivered_messages == pushes - lost + decisions.count(Fault.DUPLICATE)
        assert connected.errors_seen == decisions.count(Fault.FAIL) + decisions.count(Fault.FAIL_AFTER)
        assert connected.crashes == decisions.count(Fault.CRASH)
        # Every lost message carried a level gain, so any loss shows in the read model.
        assert connected.read_model_equals_store == (lost == 0)
        total_lost += lost
        runs_with_losses += lost > 0
    total_lost, runs_with_losses, runs_with_relay_duplicates = (
        total_lost,
        runs_with_losses,
        runs_with_relay_duplicates,
    )
    # The connected store's losses are real and common; the relay pays with duplicates instead.
    assert total_lost > 0 and runs_with_losses > SCHEDULES // 4
    assert runs_with_relay_duplicates > SCHEDULES // 10


async def test_a_non_zero_fail_rate_loses_messages_through_the_connected_store() -> None:
    for rate in (0.02, 0.1, 0.5):
        result = await run_experiment(pushes=300, rates=FaultRates(fail=rate), seed=11)
        expected = FaultRates(fail=rate).schedule(11).count(Fault.FAIL, 300)
        assert result.connected.lost_messages == expected > 0
        assert result.relay.lost_messages == 0 and result.relay.read_model_equals_store


async def test_the_relay_survives_a_crash_on_every_publish_it_can_crash_on() -> None:
    """Crash the relay on publish k, for every k of a run: it still delivers everything."""

    events = seeded_workload(12, seed=3, aggregates=3)
    call = 0
    while True:
        call += 1
        result = await run_relay(events, FaultSchedule.on_calls(call, fault=Fault.CRASH), batch_size=4)
        assert result.lost_messages == 0 and result.read_model_equals_store
        if result.crashes == 0:  # the run made fewer publishes than that
            break
    assert call > len(events)
