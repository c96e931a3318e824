"""Benchmarks on real sshd hosts: `python -m benchmarks.run` (see benchmarks/run.py)."""
