"""``survmom plot ...``: one module per figure, each with the numbers behind it (what ``--json`` prints) and
the drawing (on :mod:`survmom.app.figures`). The commands themselves are thin functions in ``app/cli.py``."""
