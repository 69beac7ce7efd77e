"""The benchmark harness (VLMEvalKit-compatible data, prompts, extraction, scoring, runner). Knows models only through the adapter contract."""
