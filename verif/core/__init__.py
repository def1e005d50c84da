"""Single-core test top: programs on one CV32E40P without the cluster."""
