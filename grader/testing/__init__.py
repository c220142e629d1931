"""Hidden tests in the grader's process: the pytest plugin (plugin.py), the fixtures tests use (fixtures.py),
the `student` proxy (proxy.py), comparison helpers (checks.py) and the reference implementation (reference.py)."""
