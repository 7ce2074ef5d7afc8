"""Projections: read models kept from the ordered log, exactly once (notebook 11).

``projection`` says what a read model is made of (the event stores it follows, how one event
changes it); ``runner`` follows the storage's log and commits each batch of changes together
with the projection's checkpoint, in one transaction of the events' own database: ``sqlite``
and ``postgres`` (the latter imports psycopg, and is loaded only when asked for by name).
Rebuilding a read model under a new name and switching readers to it, and its lag, come with
the runner.
"""

from castore_edu.projections.projection import Projection
from castore_edu.projections.runner import ProjectionRunner
from castore_edu.projections.sqlite import SQLiteProjectionRunner

__all__ = ["Projection", "ProjectionRunner", "SQLiteProjectionRunner"]
