"""The upstream step: which Azure OpenAI resource serves a request (config.py), and calling it (azure.py)."""
