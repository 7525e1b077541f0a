"""The run directory: its file names and format (``layout``, their one owner), the
experiment identity, records written and read, the lock, checkpoints and the selection
rules applied to a record.

May import the core modules and the plugin families; never ``training``, ``reports``,
``sweeps`` or ``commands`` (pyproject's import-linter contracts, tests/test_layers.py).
"""
