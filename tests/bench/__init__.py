"""The gateway's benchmark suite: ``python -m tests.bench [--quick] [--only NAME,...]``.

Benchmarks are not timed tests: they are not part of CI's pass/fail. Each one starts its own
gateway in a separate process (``python -m gateway serve``, configured by ``GATEWAY_*``
variables) on a fresh PostgreSQL database that it drops afterwards, drives it from this
process (and from load-generator processes where one process is not enough), and measures
the gateway from the outside: wall time, ``/proc/PID`` memory and CPU, the database.

Every ratio is measured side by side in the same run (the floor or reference first, then
the gateway, on the same machine a few seconds apart), since these machines are noisy.
tests/bench/README.md has the commands and the performance log.
"""
