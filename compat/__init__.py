"""LocalAI's formats in pure Python: config schema, Go-template prompts, post-processing."""
