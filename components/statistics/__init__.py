"""Statistics modules: each party describes its own columns (DataStatistics, HeteroPearson, PSI)."""
