"""How a database snapshot store turns an aggregate into text, and back.

A database keeps text, and an aggregate is whatever the reducer returns: a dict, a dataclass, an
object of your own. The stores write JSON (a person can read it in the database's tools, and it
cannot run code on the way back in, as ``pickle`` could), in two steps you can replace:

- ``encode_aggregate(aggregate)`` gives JSON data: by default a dataclass becomes a dict
  (``dataclasses.asdict``), anything else is kept as it is;
- ``decode_aggregate(data)`` rebuilds the aggregate from that data: by default the data itself.
  For a dataclass, name the class: ``decode_aggregate=lambda data: Pokemon(**data)`` (as notebook
  10 does for a message's aggregate).

**The round trip is checked on every save**: the text must decode to an aggregate *equal* to the
one saved, or the save is refused with a ``ValueError``. Without that check, a dataclass saved with
the default decoder would come back as a dict, a tuple as a list, and a read from the snapshot
would return something other than a read from the events: a snapshot must never change a result.
(An aggregate whose class defines no ``==`` compares by identity and never passes: give it one,
or use the in-memory store, which copies instead.) Saves are rare — one per ``n`` events — so the
check costs little.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from castore_edu.core.arguments import require_callable
from castore_edu.core.errors import InvalidEventError
from castore_edu.core.events import encode_json

AggregateEncoder = Callable[[Any], Any]
AggregateDecoder = Callable[[Any], Any]


def to_json_data(aggregate: Any) -> Any:
    """The default encoder: a dataclass instance as a dict, anything else as it is."""
    if dataclasses.is_dataclass(aggregate) and not isinstance(aggregate, type):
        return dataclasses.asdict(aggregate)
    return aggregate


def as_is(data: Any) -> Any:
    """The default decoder: the JSON data itself."""
    return data


class AggregateCodec:
    """``dumps`` an aggregate to JSON text through ``encode_aggregate``; ``loads`` it back through
    ``decode_aggregate``."""

    def __init__(
        self,
        encode_aggregate: AggregateEncoder = to_json_data,
        decode_aggregate: AggregateDecoder = as_is,
    ) -> None:
        require_callable(
            "encode_aggregate", encode_aggregate, hint="a function from an aggregate to JSON data"
        )
        require_callable(
            "decode_aggregate", decode_aggregate, hint="a function from JSON data to an aggregate"
        )
        self.encode_aggregate = encode_aggregate
        self.decode_aggregate = decode_aggregate

    def dumps(self, aggregate: Any) -> str:
        """JSON text that :meth:`loads` turns back into an aggregate equal to ``aggregate``; else
        ``ValueError`` (not JSON data, or not the same aggregate once read back)."""
        try:
            text = encode_json(self.encode_aggregate(aggregate), "the aggregate")
        except InvalidEventError as error:
            raise ValueError(
                f"{error}. Hint: pass encode_aggregate, a function from the aggregate to JSON data"
            ) from None
        if text is None:  # encode_aggregate returned None: nothing to rebuild an aggregate from
            raise ValueError("encode_aggregate returned None for the aggregate; return its JSON data")
        if self.loads(text) != aggregate:
            raise ValueError(
                f"the aggregate does not read back equal from its JSON ({type(aggregate).__name__} in, "
                f"{type(self.loads(text)).__name__} out): a snapshot would change the result. "
                "Hint: pass decode_aggregate, e.g. decode_aggregate=lambda data: Pokemon(**data)"
            )
        return text

    def loads(self, text: str) -> Any:
        return self.decode_aggregate(json.loads(text))
