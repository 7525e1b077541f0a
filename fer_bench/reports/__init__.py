"""Boards: leaderboards, comparisons, tables, plots and checked prose, read from the
records of results directories.

May import ``records`` and the core modules; never ``training``, ``sweeps`` or
``commands`` (a table never imports torch or a method).
"""
