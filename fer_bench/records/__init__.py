"""The run directory: its file names and format, the experiment identity, records
written and read, the lock, checkpoints and the selection rules applied to a record.

May import the core modules and the plugin families' contracts; never ``training``,
``reports``, ``sweeps`` or ``commands``.
"""
