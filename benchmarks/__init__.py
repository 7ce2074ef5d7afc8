"""Benchmarks: what castore_edu costs on this machine, alone and side by side with its peers.

Not part of the installed package: run them from a clone, ``python -m benchmarks`` (``make
bench``). They print figures and assert nothing; ``docs/benchmarks.md`` has the reference run.

- ``core``: push and read on each storage adapter, against raw ``sqlite3``;
- ``messaging``: the connected store's overhead and the ``prev_aggregate`` scaling;
- ``relay``: the relay's throughput and lag;
- ``peers``: the same work done by the ``eventsourcing`` library and raw ``sqlite3``;
- ``floor``: the least a group push and a relay can cost, from the parts the API requires.
- ``contention``: many commands racing for one aggregate, with and without back-off.
- ``postgres`` and ``nats``: on private servers, against raw psycopg and raw nats-py.
"""
