"""Reply-writing (LLM) worker service."""
