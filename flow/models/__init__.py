"""Trained models: the store (one JSON file per party and component), the model JSON format,
signed archives (export/import), deploy (a predict DSL from a training job), model ops."""
