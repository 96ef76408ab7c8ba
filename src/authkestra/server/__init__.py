"""The authorization server: issues Client Credentials tokens (``authkestra serve``).

``pip install 'authkestra[server]'``; add ``[postgres]`` and ``[redis]`` to run
several instances. :func:`create_app` builds the Starlette ASGI application.
"""

from .app import create_app
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
