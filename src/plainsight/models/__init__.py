"""Model adapters: vision encoders, VLMs, the models.toml registry, and test doubles."""
