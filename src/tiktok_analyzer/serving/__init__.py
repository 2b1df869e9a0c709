"""Serving the analyzers with Triton: the adapter, the launcher, the model repository."""
