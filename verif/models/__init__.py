"""Simulation tests of model layers beyond the encoder: the Llama decoder layer
(:mod:`verif.models.sim`)."""
