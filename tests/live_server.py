"""A real anyon server on 127.0.0.1 for HTTP/WebSocket/SSE tests: the harness the benchmarks use too."""

from anyon.harness.live import LiveServer, live_server

__all__ = ["LiveServer", "live_server"]
