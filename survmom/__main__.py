"""``python -m survmom``: the same as the ``survmom`` command."""

from survmom.app.cli import main

main()
