"""Check that every pin of requirements/constraints.txt has a wheel wherever it applies.

``uv pip compile --universal`` pins versions for every platform and Python at once, with
environment markers, but it does not check that a pinned version ships a *wheel* for each of
them: where it does not, pip falls back to building the source distribution, which needs a C
compiler a learner does not have. ``make lock`` runs this script after compiling.

For each target (Linux, Intel and Apple-silicon macOS, Windows, each on Python 3.11, 3.12 and
3.13; 3.11 twice, below and above 3.11.5) it evaluates the markers for that target, then asks pip, in a dry run (nothing is
installed, wheel metadata only), to find a wheel of every pin that applies there. A gap is
closed with a marker-bound cap in requirements/lock-constraints.txt, then ``make lock`` again.

    python tools/check_wheels.py                 # every target
    python tools/check_wheels.py --python 3.13.0 # only the targets of that Python
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
# 3.11.2 is Debian 12's: some pins differ below 3.11.5 (see the markers in the constraints).
PYTHONS = ("3.11.2", "3.11.9", "3.12.0", "3.13.0")


@dataclass(frozen=True)
class Platform:
    name: str
    pip_platforms: tuple[str, ...]  # wheel platform tags pip may pick (older ones are implied)
    sys_platform: str
    platform_system: str
    os_name: str
    platform_machine: str


PLATFORMS = (
    Platform(
        "Linux x86_64", ("manylinux_2_28_x86_64", "manylinux2014_x86_64"), "linux", "Linux", "posix", "x86_64"
    ),
    Platform(
        "macOS x86_64",
        ("macosx_12_0_x86_64", "macosx_12_0_universal2"),
        "darwin",
        "Darwin",
        "posix",
        "x86_64",
    ),
    Platform(
        "macOS arm64", ("macosx_12_0_arm64", "macosx_12_0_universal2"), "darwin", "Darwin", "posix", "arm64"
    ),
    Platform("Windows x86_64", ("win_amd64",), "win32", "Windows", "nt", "AMD64"),
)


def pins_for(platform: Platform, python: str) -> list[str]:
    """The ``name==version`` pins that apply on ``platform`` with CPython ``python``."""
    environment = {
        "sys_platform": platform.sys_platform,
        "platform_system": platform.platform_system,
        "os_name": platform.os_name,
        "platform_machine": platform.platform_machine,
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    pins = []
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(environment):
            pins.append(f"{req.name}{req.specifier}")
    return pins


def missing_wheels(platform: Platform, python: str) -> str | None:
    """pip's complaint when some pin has no wheel for this target, else None."""
    with tempfile.TemporaryDirectory() as target:
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps"]
        command += ["--ignore-installed", "--only-binary", ":all:", "--target", target]
        abi = "cp" + "".join(python.split(".")[:2])
        command += ["--python-version", python, "--implementation", "cp", "--abi", abi]
        for tag in platform.pip_platforms:
            command += ["--platform", tag]
        done = subprocess.run(
            [*command, *pins_for(platform, python)], capture_output=True, text=True, timeout=600
        )
    if done.returncode == 0:
        return None
    return "\n".join(line for line in done.stderr.splitlines() if line.startswith("ERROR"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", choices=PYTHONS, help="only these Pythons")
    options = parser.parse_args(argv)
    failed = 0
    for python in options.python or PYTHONS:
        for platform in PLATFORMS:
            problem = missing_wheels(platform, python)
            print(f"{platform.name}, Python {python}: {'ok' if problem is None else 'NO WHEEL'}")
            if problem is not None:
                print(f"  {problem}")
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
