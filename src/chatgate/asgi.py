"""`chatgate.asgi:app`: the ASGI app for uvicorn (`chatgate dev`, Lambda Web Adapter in streaming mode)."""

from chatgate.app import create_app

app = create_app()
