"""Tests that start real processes (devnodes, `miroir serve`, `miroir dev`, the CLI, linters)
and talk to them over loopback HTTP."""
