"""The default clock stamps in castore's format."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from castore_edu.core.clock import format_timestamp, utc_now


def test_utc_now_is_now_in_utc_with_milliseconds_and_z() -> None:
    before = format_timestamp(datetime.now(UTC))
    stamp = utc_now()
    after = format_timestamp(datetime.now(UTC))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert before <= stamp <= after
