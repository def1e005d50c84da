"""Bare-metal software for the cluster's cores: runtime, apps and their build (sw.build)."""
