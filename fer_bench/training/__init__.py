"""Training one run: the engine, its trainer loop, augmentation, optimisers, metrics.

Owns everything between a :class:`~fer_bench.config.RunConfig` and a finished run
directory. May import the core modules, ``data``, ``pretrained``, the plugin families
(``methods``, ``protocols``) and ``records`` (the run directory it writes); never
``reports``, ``sweeps`` or ``commands``.
"""
