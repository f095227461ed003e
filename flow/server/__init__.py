"""The party's long-running flow server (HTTP API) and the control plane between servers."""
