"""Real servers for the tests and the benchmarks: a configuration rooted in one directory
(:mod:`anyon.harness.config`), an anyon server on 127.0.0.1 in a background thread
(:mod:`anyon.harness.live`) and a private two-node Docker Swarm on loopback addresses
(:mod:`anyon.harness.swarm`).

They live in the package, not in ``tests/``, so that ``bench/`` measures with the same harness the tests
check with, without importing test fixtures. Nothing here is used by a running server.
"""
