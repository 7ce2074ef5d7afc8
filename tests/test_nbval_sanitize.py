"""What tests/sanitize.cfg hides from nbval's comparison, and what it leaves compared.

The rules are read with nbval's own parser and applied the way nbval applies them (in order,
re.sub), so a rule that silently stops matching, or starts hiding real output, fails here.
"""

import re
from pathlib import Path

import pytest
from nbval.plugin import get_sanitize_patterns

SANITIZE_FILE = Path(__file__).with_name("sanitize.cfg")


def sanitize(text: str) -> str:
    for regex, replacement in get_sanitize_patterns(SANITIZE_FILE.read_text()):
        text = re.sub(regex, replacement, text)
    return text


def test_every_rule_is_read_by_nbval() -> None:
    sections = re.findall(r"^\[.+\]$", SANITIZE_FILE.read_text(), re.MULTILINE)
    assert len(get_sanitize_patterns(SANITIZE_FILE.read_text())) == len(sections)


@pytest.mark.parametrize(
    ("output", "compared_as"),
    [
        ("<Store object at 0x7f3a2b1c4d50>", "<Store object at 0xADDRESS>"),
        ("aggregate 3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c", "aggregate <uuid>"),
        ("stored in /tmp/tmpk2j4x_ab/events.sqlite3", "stored in <tmpdir>/events.sqlite3"),
        ("/private/var/folders/x1/ab_cd/T/tmpq9z/db", "<tmpdir>/db"),
        ("   2.47 ms without,    12.20 ms with", "   <duration> without,    <duration> with"),
        ("took 850 µs, then 1.5 s", "took <duration>, then <duration>"),
        ("push: 123,456 events/s", "push: <rate> events/s"),
    ],
)
def test_values_that_change_between_runs_are_hidden(output: str, compared_as: str) -> None:
    assert sanitize(output) == compared_as


@pytest.mark.parametrize(
    "output",
    [
        "<Figure size 500x250 with 1 Axes>",  # "0x250" inside a size is not an address
        "timestamp='2024-01-01T00:00:03.000Z'",  # stamps from the notebooks' fixed clock
        "version 3, 10 events, limit 2",
        "Python 3.11.7",
    ],
)
def test_deterministic_output_stays_compared(output: str) -> None:
    assert sanitize(output) == output
