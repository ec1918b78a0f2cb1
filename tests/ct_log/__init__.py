"""The test suite's own RFC 6962 log (no CT log server is packaged for this machine)."""
