"""Real models: frontends that read checkpoints into :mod:`ita.models.ir` and their float
reference forwards."""
