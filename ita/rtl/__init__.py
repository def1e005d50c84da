"""Amaranth RTL of the ITA engine."""
