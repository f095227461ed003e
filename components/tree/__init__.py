"""Tree models: HeteroSecureBoost."""
