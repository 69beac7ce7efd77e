"""VLoRA and its baselines: one multimodal model whose connector is the only fork."""
