"""chatgate: an OpenAI-compatible chat completions gateway for Azure OpenAI on AWS."""

__version__ = "0.1.0"
