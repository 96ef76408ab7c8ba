"""Running the admin API beside the token endpoint: its own listener, in a thread of
the main process (under ``--workers N`` the main process supervises the workers; the
admin listener there adds up their metrics)."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["AdminListener"]


class AdminListener:
    """The admin API served by uvicorn on ``host:port`` in a daemon thread."""

    def __init__(self, settings: Any, *, log_config: dict[str, Any] | None) -> None:
        import uvicorn

        from . import create_admin_app

        assert settings.admin_port is not None
        # The store was made and migrated before serving; the public app starting beside
        # this one must be the only one to touch the schema (Alembic is not thread-safe).
        settings = settings.model_copy(update={"migrate": False})
        config = uvicorn.Config(
            create_admin_app(settings),
            host=settings.admin_host,
            port=settings.admin_port,
            log_config=log_config,
            access_log=False,
            server_header=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="authkestra-admin", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
