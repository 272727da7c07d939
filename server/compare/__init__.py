"""`llamaslots compare`: the same prompts against two OpenAI-compatible servers, with LocalAI's failures as findings."""
