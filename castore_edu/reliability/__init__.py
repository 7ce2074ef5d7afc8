"""Reliability: the remedies for what notebook 07 breaks (notebook 08).

``relay`` publishes what storage *has*, following its ordered log with a checkpoint, so nothing
stored is ever lost; ``idempotency`` makes a consumer's second delivery of a message harmless,
because "at least once" means "sometimes twice".
"""

from castore_edu.reliability.idempotency import (
    IdempotentHandler,
    InMemoryProcessedMessages,
    SQLiteProcessedMessages,
    idempotent,
    message_key,
)
from castore_edu.reliability.relay import (
    InMemoryCheckpointStore,
    PostgresCheckpointStore,
    Relay,
    SQLiteCheckpointStore,
)

__all__ = [
    "IdempotentHandler",
    "InMemoryCheckpointStore",
    "InMemoryProcessedMessages",
    "PostgresCheckpointStore",
    "Relay",
    "SQLiteCheckpointStore",
    "SQLiteProcessedMessages",
    "idempotent",
    "message_key",
]
