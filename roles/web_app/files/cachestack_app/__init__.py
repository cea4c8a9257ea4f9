"""cachestack_app: the cache-aside web app (``gunicorn 'cachestack_app:create_app()'``)."""

from .app import create_app

__all__ = ["create_app"]
