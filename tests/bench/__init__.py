"""Tests of make bench (bench/) and of the C++ engine harness (hw/harness/engine.py)."""
