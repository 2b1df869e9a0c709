"""Probe, decode once, fan out to Triton over gRPC, stage DAG, report; the CLI."""
