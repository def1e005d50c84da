"""Tests of make bench (bench/) and of the C++ engine harness (verif/harness/engine.py)."""
