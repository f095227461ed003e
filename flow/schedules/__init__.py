"""Cron retraining: the rules (what a schedule is, its slots, promotion), the firing loop,
and retrain (resolving ``{latest}`` tables and submitting a firing). Rows live in flow.store."""
