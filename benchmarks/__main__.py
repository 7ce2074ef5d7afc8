"""``python -m benchmarks`` runs ``benchmarks.core`` (``--all`` adds the peer comparison)."""

from benchmarks.core import main

main()
