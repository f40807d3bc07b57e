"""Azure Cost Management (Azure OpenAI and the other Foundry Models)."""
