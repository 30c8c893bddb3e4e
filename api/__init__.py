"""Flask API: `create_app(config=None)` builds the app in named steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response

from api.compat import bp as compat_bp
from api.errors import register as register_error_handlers
from api.health import bp as health_bp
from api.jobs import bp as jobs_bp
from api.labels import bp as labels_bp
from api.metrics import bp as metrics_bp
from api.openapi import bp as openapi_bp
from api.owners import bp as owners_bp
from api.pages import bp as pages_bp
from api.services import Services
from api.uploads import FORM_OVERHEAD
from shared.logs import configure_logging
from shared.service.queue import create_celery
from shared.settings import Settings, get_settings, load_settings
from shared.storage import open_store


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; `config` overrides settings by field name (tests, embedding)."""
    settings = load_settings(**config) if config else get_settings()
    app = Flask(__name__)
    configure_app(app, settings)
    register_extensions(app, settings)
    register_blueprints(app)
    register_error_handlers(app)
    app.after_request(security_headers)
    return app


# The pages load their script and styles from /static only (no inline code), and no site may
# frame them: they keep the API token in localStorage.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def configure_app(app: Flask, settings: Settings) -> None:
    configure_logging(settings)
    app.config.update(
        SECRET_KEY=settings.flask_secret_key,
        # The limit is on the uploaded file; the multipart form around it may add a little.
        MAX_CONTENT_LENGTH=settings.upload_max_bytes + FORM_OVERHEAD,
        JSON_SORT_KEYS=False,
    )


def register_extensions(app: Flask, settings: Settings) -> None:
    app.extensions["fraudscore"] = Services(
        settings=settings,
        celery=create_celery(settings),
        store=open_store(settings=settings),
    )


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(health_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(labels_bp)
    app.register_blueprint(owners_bp)
    app.register_blueprint(compat_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(metrics_bp)
