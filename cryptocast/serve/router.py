"""The router application: the HTTP API (``serve/api/``) as a FastAPI ingress deployment, and the
live predictor beside it.

``ROUTER_IMPORT`` (``config.py``) names :func:`app`. The deployment's replica makes the state that
every route shares (``api.services.ApiServices``: the database, the exchange clock, the caches and
their news) once, in its ``__init__``; routes receive it through ``api.deps.Services``.
"""

from ray import serve
from ray.serve.handle import DeploymentHandle

from cryptocast.logs import setup_worker_logging
from cryptocast.serve.api.app import build_api
from cryptocast.serve.api.services import ApiServices
from cryptocast.serve.config import ServeOptions
from cryptocast.serve.live import LivePredictor
from cryptocast.settings import get_settings

api = build_api()


@serve.deployment(name="Router", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
@serve.ingress(api)
class Router:
    def __init__(self, options: dict, live: DeploymentHandle) -> None:
        setup_worker_logging()
        get_settings().require_api_token()
        self.services = ApiServices(ServeOptions(**options), live)


def app(args: dict) -> serve.Application:
    """Application builder (``import_path`` of the router application)."""
    return Router.bind(args, LivePredictor.bind(args))  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @serve.deployment made each a Deployment
