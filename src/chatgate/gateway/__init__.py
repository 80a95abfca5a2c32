"""The gateway: a request's walk, region -> key -> validate -> reserve -> upstream -> stream -> settle.

`pipeline.py` is the walk every API shares; `apis/` holds one adapter per API (chat completions, responses,
embeddings) and `routes/` one line per endpoint over the pipeline; `settlement.py` settles each request
before its response ends.
"""
