"""Clustering components (FATE's unsupervised learning modules)."""
