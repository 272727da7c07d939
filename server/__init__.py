"""llamaslots server: HTTP API, model manager, slot engine, CLI."""
