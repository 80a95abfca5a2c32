"""`chatgate.asgi:app`: the ASGI app for uvicorn (`chatgate dev`, Lambda Web Adapter in streaming mode)."""

from chatgate.app import create_app
from chatgate.observability.logs import configure_logging
from chatgate.settings import Settings

settings = Settings()
configure_logging(settings.log_level)
app = create_app(settings)
