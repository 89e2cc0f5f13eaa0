"""``python -m survmom``: the same as the ``survmom`` command."""

from survmom.cli import main

main()
