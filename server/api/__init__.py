"""HTTP routes (OpenAI and LocalAI shapes) and their error mapping."""
