"""Many runs: planning a grid (sweep files, boards' grids, tuning budgets), executing it
on local workers or Ray, and watching it.

May import everything below it (``training``, ``records``, ``reports``, the core);
never ``commands``.
"""
