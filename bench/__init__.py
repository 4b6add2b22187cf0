"""birdhouse benchmark suite: load generator, scenarios, references and reporting.

``python -m bench`` (or ``scripts/bench``) starts birdhouse, the references
(a trivial granian endpoint, a ClickHouse server when one is installed, chDB
in a subprocess) on loopback, runs every scenario against birdhouse and its
reference in the same run and writes JSON, markdown and PNG results.
"""
