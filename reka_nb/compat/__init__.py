"""OpenAI-style ``Client`` / ``AsyncClient`` on top of reka_nb's own clients (see ``client``)."""

from .client import AsyncClient, AsyncStream, Client, Reka, Stream

__all__ = ["AsyncClient", "AsyncStream", "Client", "Reka", "Stream"]
