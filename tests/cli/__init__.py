"""Tests of the command-line library (ita/cli.py) and of every entry point's use of it."""
