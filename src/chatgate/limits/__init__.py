"""Limits and accounting: per-workspace rate limits (`ratelimit.py`, exact across instances), the prompt
token counts they reserve by (`tokens.py`, `tokenizer.py` and its vocabularies), the workspaces' overrides,
and the usage ledger (`usage.py`, with `ledger.py`'s "unsettled" lines)."""
