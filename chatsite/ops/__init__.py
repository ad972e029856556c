"""Operations: health checks, draining, the stop, the metrics endpoint, structured logs and CloudWatch EMF lines.

None of this is chat logic; chat.metrics defines what is measured, this package exposes it.
See docs/operations.md.
"""
