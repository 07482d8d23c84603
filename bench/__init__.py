"""Benchmarks: the scripts here print JSON; ``bench.lib`` holds what they measure with.

Not part of the ``cryptocast`` package (the wheel includes ``cryptocast*`` only): nothing under
``cryptocast/`` imports from here. Run the scripts from the repository root, e.g.
``.venv/bin/python bench/serve.py``; each puts the root on ``sys.path`` for ``bench.lib``.
"""
