"""Local development helpers: the built-in Azure OpenAI emulator used by `chatgate dev` and the tests."""
