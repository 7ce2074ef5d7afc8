"""The event store explorer, driven headlessly: set ``.value``, call ``.click()``, read the HTML."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("ipywidgets")

from castore_edu import EventDetail
from castore_edu.course.pokedex import (
    Pokedex,
    in_memory_pokedex,
    pokemon_appeared,
    pokemons_event_store,
    sqlite_pokedex,
    tell_the_story,
)
from castore_edu.course.widgets import (
    EventStoreExplorer,
    LoadedHistories,
    aggregate_html,
    event_html,
    load_histories,
)

pytestmark = pytest.mark.anyio

PIKACHU = ("POKEMONS", "pikachu")
CHARMANDER = ("POKEMONS", "charmander")
ASH = ("TRAINERS", "ash")


async def story(pokedex: Pokedex | None = None) -> Pokedex:
    pokedex = pokedex or in_memory_pokedex()
    await tell_the_story(pokedex)
    return pokedex


async def explorer_of(pokedex: Pokedex) -> EventStoreExplorer:
    return EventStoreExplorer(await load_histories(*pokedex.stores))


# -- the loaded histories: time travel by folding preloaded events -----------------------------


@pytest.mark.parametrize("make_pokedex", [in_memory_pokedex, sqlite_pokedex])
async def test_folding_up_to_a_version_is_get_aggregate_with_max_version(make_pokedex: Any) -> None:
    pokedex = await story(make_pokedex())
    loaded = await load_histories(*pokedex.stores)
    stores = {store.event_store_id: store for store in pokedex.stores}
    checked = 0
    for key in loaded.aggregate_keys():
        store_id, aggregate_id = key
        for version in loaded.versions(key):
            expected = await stores[store_id].get_aggregate(aggregate_id, max_version=version)
            assert loaded.aggregate_at(key, version) == expected.aggregate
            assert loaded.event_at(key, version) == expected.last_event
            checked += 1
    assert checked == 4 + 1 + 2  # every version of pikachu, charmander and ash
    pokedex.close()


async def test_load_histories_reads_every_page_in_listing_order() -> None:
    pokedex = await story()
    for name in ("bulbasaur", "squirtle", "eevee"):
        await pokedex.pokemons.push_event(pokemon_appeared(name, name=name.title(), level=1))
    loaded = await load_histories(*pokedex.stores, page_size=2)
    assert loaded.aggregate_keys() == [
        PIKACHU,
        CHARMANDER,
        ("POKEMONS", "bulbasaur"),
        ("POKEMONS", "squirtle"),
        ("POKEMONS", "eevee"),
        ASH,
    ]
    assert loaded.versions(PIKACHU) == [1, 2, 3, 4]


async def test_loaded_histories_do_not_follow_the_store() -> None:
    pokedex = await story()
    loaded = await load_histories(pokedex.pokemons)
    await pokedex.pokemons.push_event(pokemon_appeared("mew", name="Mew", level=50))
    assert ("POKEMONS", "mew") not in loaded.aggregate_keys()
    assert ("POKEMONS", "mew") in (await load_histories(pokedex.pokemons)).aggregate_keys()


def test_a_version_without_event_shows_none_and_folds_what_came_before() -> None:
    store = pokemons_event_store()
    appeared = pokemon_appeared("mew", name="Mew", level=50, timestamp="2024")
    later = EventDetail(aggregate_id="mew", version=3, type="POKEMON_LEVELED_UP", timestamp="2024")
    loaded = LoadedHistories([store], {("POKEMONS", "mew"): [later, appeared]})  # any order in
    assert loaded.versions(("POKEMONS", "mew")) == [1, 3]
    assert loaded.event_at(("POKEMONS", "mew"), 2) is None
    assert loaded.aggregate_at(("POKEMONS", "mew"), 2).level == 50
    assert loaded.aggregate_at(("POKEMONS", "mew"), 3).level == 51


def test_loaded_histories_need_the_store_of_each_aggregate() -> None:
    with pytest.raises(ValueError, match="TRAINERS"):
        LoadedHistories([pokemons_event_store()], {("TRAINERS", "ash"): []})


# -- rendering ----------------------------------------------------------------------------------


def test_event_html_is_a_table_of_fields_with_json_payloads() -> None:
    html = event_html(pokemon_appeared("pikachu", name="Pikachu", level=5, timestamp="2024"))
    assert "<th style='text-align:left'>type</th><td>POKEMON_APPEARED</td>" in html
    assert "{&quot;level&quot;: 5, &quot;name&quot;: &quot;Pikachu&quot;}" in html
    assert "no event" in event_html(None)


def test_rendering_escapes_html() -> None:
    event = pokemon_appeared("<b>x</b>", name="<script>alert(1)</script>", level=1)
    assert "<script>" not in event_html(event) and "&lt;script&gt;" in event_html(event)
    assert "<b>x</b>" not in aggregate_html({"<b>x</b>": "<i>"})


async def test_aggregate_html_handles_dataclasses_mappings_other_values_and_none() -> None:
    pokemons = (await story()).pokemons
    aggregate = (await pokemons.get_aggregate("pikachu")).aggregate
    assert "Aggregate (Pokemon)" in aggregate_html(aggregate) and "<td>7</td>" in aggregate_html(aggregate)
    assert "<th style='text-align:left'>level</th><td>3</td>" in aggregate_html({"level": 3})
    assert "<th style='text-align:left'>value</th><td>42</td>" in aggregate_html(42)
    assert "does not exist yet" in aggregate_html(None)
    assert "[&quot;pikachu&quot;]" in aggregate_html(
        (await (await story()).trainers.get_aggregate("ash")).aggregate
    )


# -- the widget, driven headlessly ------------------------------------------------------------------


async def test_it_opens_on_the_first_aggregate_at_its_latest_version() -> None:
    explorer = await explorer_of(await story())
    assert explorer.selected == PIKACHU
    assert (explorer.version.min, explorer.version.max, explorer.version.value) == (1, 4, 4)
    assert "version 4 of 4" in explorer.title.value
    assert "<td>7</td>" in explorer.aggregate_view.value and "POKEMON_LEVELED_UP" in explorer.event_view.value
    assert explorer.next.disabled and not explorer.previous.disabled


async def test_moving_the_slider_travels_in_time() -> None:
    explorer = await explorer_of(await story())
    explorer.version.value = 1
    assert "POKEMON_APPEARED" in explorer.event_view.value
    assert "<td>wild</td>" in explorer.aggregate_view.value and "<td>5</td>" in explorer.aggregate_view.value
    assert explorer.previous.disabled and not explorer.next.disabled
    explorer.version.value = 2
    assert (
        "POKEMON_CAUGHT" in explorer.event_view.value and "<td>caught</td>" in explorer.aggregate_view.value
    )


async def test_buttons_step_one_version_and_stop_at_the_ends() -> None:
    explorer = await explorer_of(await story())
    explorer.previous.click()
    explorer.previous.click()
    assert explorer.version.value == 2 and "version 2 of 4" in explorer.title.value
    for _ in range(5):
        explorer.previous.click()
    assert explorer.version.value == 1
    explorer.next.click()
    assert explorer.version.value == 2
    for _ in range(5):
        explorer.next.click()
    assert explorer.version.value == 4


async def test_picking_another_aggregate_fits_the_slider_to_it() -> None:
    explorer = await explorer_of(await story())
    explorer.version.value = 3
    explorer.aggregate.value = CHARMANDER  # one version only
    assert (explorer.version.min, explorer.version.max, explorer.version.value) == (1, 1, 1)
    assert "Charmander" in explorer.aggregate_view.value
    assert explorer.previous.disabled and explorer.next.disabled
    explorer.aggregate.value = ASH
    assert (explorer.version.max, explorer.version.value) == (2, 2)
    assert "TRAINERS · ash" in explorer.title.value and "Aggregate (Trainer)" in explorer.aggregate_view.value
    explorer.aggregate.value = PIKACHU  # back to the longer history
    assert (explorer.version.min, explorer.version.max, explorer.version.value) == (1, 4, 4)


async def test_the_dropdown_lists_every_aggregate_with_its_store() -> None:
    explorer = await explorer_of(await story())
    assert list(explorer.aggregate.options) == [
        ("POKEMONS · pikachu", PIKACHU),
        ("POKEMONS · charmander", CHARMANDER),
        ("TRAINERS · ash", ASH),
    ]


async def test_an_empty_load_says_so_and_disables_the_controls() -> None:
    explorer = await explorer_of(in_memory_pokedex())
    assert explorer.selected is None and "No aggregate" in explorer.title.value
    assert explorer.aggregate.disabled and explorer.version.disabled
    assert explorer.previous.disabled and explorer.next.disabled
    explorer.next.click()  # harmless
    assert explorer.version.value == 0


async def test_it_displays_as_the_widget_with_a_short_stable_text_form() -> None:
    explorer = await explorer_of(await story())
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == "EventStoreExplorer(3 aggregates)"
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.widget.model_id
