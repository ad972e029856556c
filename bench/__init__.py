"""Chatsite's benchmark: a load generator, the servers it is compared with, and the runner.

See docs/performance.md for how to run it and what the figures mean.
"""
