"""The APIs chatgate serves, each an adapter to the one pipeline (chatgate.gateway.pipeline).

What every API shares (region, key, reserve, call, relay, settle) is written once in the pipeline; what
differs per API — how to read and check a body, how to count its prompt, which upstream call, where usage
sits in a response and in a stream, how a stream is framed — is one adapter here (apis.base.Api).
"""
