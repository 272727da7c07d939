"""The slot engine: one thread owns a llama context and decodes every active slot per step."""
