"""Chat models for agents: the configured LangChain model, the deterministic playbook model, and fallback."""
