"""Reaching upstreams: the client and its attempt loop (``client``), the retry policy
(``retry``), the choice of upstream and its live state (``balancer``), reading streams with a
watchdog (``stream``, ``sse``), and how failures map onto shim's errors (``failures``)."""
