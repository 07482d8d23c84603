"""``cryptocast dashboard --api URL``: the dashboard alone, against a running API.

It takes no API token: reads need none, and a viewer signs in on the page with their own for changes.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cryptocast.cliutil import console
from cryptocast.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def dashboard(
    api: Annotated[str, typer.Option("--api", help="the API's base URL")] = "",
    port: Annotated[int, typer.Option("--port", help="0: the dashboard_port setting")] = 0,
) -> None:
    """Serve the dashboard on 127.0.0.1 until Ctrl-C."""
    from cryptocast.dashboard.app import create_app
    from cryptocast.dashboard.client import shown_url

    settings = get_settings()
    api_url = api or f"http://{settings.bind_host}:{settings.api_port}"
    chosen = port or settings.dashboard_port
    console.print(
        f"dashboard on http://{settings.bind_host}:{chosen} (API {shown_url(api_url)}); Ctrl-C stops it"
    )
    create_app(api_url).run(host=settings.bind_host, port=chosen, debug=False)
