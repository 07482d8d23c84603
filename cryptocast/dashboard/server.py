"""Running the dashboard beside the rest of the system: a WSGI server in a background thread.

A thread (not a subprocess) because ``cryptocast up`` already owns the process and its Ctrl-C;
werkzeug's threaded server answers each Dash callback on its own thread, and ``shutdown`` returns
once the serving loop has stopped. The dashboard gets no API token from the settings: viewers sign
in with their own for changes (:mod:`cryptocast.dashboard.session`).
"""

from __future__ import annotations

import threading

from werkzeug.serving import BaseWSGIServer, make_server

from cryptocast.dashboard.app import create_app
from cryptocast.settings import Settings

_running: tuple[BaseWSGIServer, threading.Thread] | None = None


def start_dashboard(settings: Settings, api_url: str, port: int | None = None) -> str:
    """Serve the dashboard on ``bind_host:dashboard_port`` (``port`` overrides; 0 picks a free one)."""
    global _running
    if _running is not None:
        raise RuntimeError("the dashboard is already running (stop_dashboard() first)")
    app = create_app(api_url)
    server = make_server(
        settings.bind_host, settings.dashboard_port if port is None else port, app.server, threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    _running = (server, thread)
    return f"http://{settings.bind_host}:{server.server_port}"


def stop_dashboard() -> None:
    """Stop serving and wait for the thread (no-op when not running)."""
    global _running
    if _running is None:
        return
    server, thread = _running
    _running = None
    server.shutdown()
    server.server_close()
    thread.join()
