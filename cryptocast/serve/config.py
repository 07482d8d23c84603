"""The declarative Serve config, generated from the database.

One router application (the HTTP API and the live predictor) plus one application per pair,
``pair_<SYMBOL>``. Which models a pair serves goes in its deployment's ``user_config``: changing a
champion only changes that value, so Serve reconfigures the running replica in place (no restart,
no failed request), and unchanged pairs keep their replicas. A pair added to the database appears
as a new application the next time the config is generated and applied; applying the same config
twice changes nothing, which is why the config is always regenerated rather than re-applied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sqlalchemy import text

from cryptocast.settings import LOOPBACK, Settings
from cryptocast.sql.database import Database
from cryptocast.sql.urlfile import write_url

ROUTER_APP = "router"
ROUTER_IMPORT = "cryptocast.serve.router:app"
PAIR_IMPORT = "cryptocast.serve.pair:app"
PAIR_DEPLOYMENT = "PairModel"
PAIR_PREFIX = "pair_"
# A pair replica mostly waits on I/O and runs a 1-12 ms NumPy forward pass. Reservations on two
# cores with 20 pairs: 20 x 0.03 (pair replicas) + 0.15 (router) + 20 x 0.02 (ingest actors) + 0.03
# (supervisor, budget) + 0.5 (a Tune trial) = 1.68; at 0.05 a pair it was 2.08, and the trial waited.
PAIR_CPUS = 0.03
ROUTER_CPUS = 0.1
LIVE_CPUS = 0.05
SERVED_STATES = ("new", "backfilling", "live", "paused", "halted", "error")  # not "removed"

_MODELS_SQL = text(
    """
    SELECT DISTINCT ON (symbol_id, kind, status) symbol_id, kind, status, id
    FROM models WHERE status IN ('champion', 'shadow')
    ORDER BY symbol_id, kind, status, version DESC
    """
)
_PAIRS_SQL = text("SELECT id, symbol, status FROM symbols ORDER BY symbol")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Everything the applications need, passed to them as builder arguments.

    ``database_url`` never leaves the driver: Serve records application args, so building a config
    moves the URL into an owner-only file (:meth:`sealed`) and the args carry that file's path
    (:mod:`cryptocast.sql.urlfile`). Without either, replicas read ``CRYPTOCAST_DATABASE_URL``
    (a cluster's pods get it from a Secret), so a config never carries a password.
    """

    model_store: str
    rest_url: str
    stream_url: str
    host: str = LOOPBACK
    port: int = 8000
    database_url: str | None = None  # the driver's; never in args
    database_url_file: str | None = None
    manage_config: bool = True  # the router re-applies the config when the database changes
    skill_window_minutes: int = 24 * 60
    skill_min_samples: int = 120
    access_log: bool = True  # one log line per request; off is one of Serve's throughput options

    @classmethod
    def from_settings(cls, settings: Settings, database_url: str | None = None) -> ServeOptions:
        return cls(
            model_store=settings.model_store,
            rest_url=settings.rest_url,
            stream_url=settings.stream_url,
            host=settings.bind_host,
            port=settings.api_port,
            database_url=database_url,
        )

    def sealed(self) -> ServeOptions:
        """These options with the database URL moved into its file: what may be sent to Serve."""
        if self.database_url is None:
            return self
        return replace(self, database_url=None, database_url_file=write_url(self.database_url))

    def args(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and k != "database_url"}


@dataclass(frozen=True, slots=True)
class PairEntry:
    symbol_id: int
    symbol: str
    persistence: int | None = None  # model ids
    lstm: int | None = None
    shadow: int | None = None

    @property
    def user_config(self) -> dict:
        return {"persistence": self.persistence, "lstm": self.lstm, "shadow": self.shadow}


def pair_app_name(symbol: str) -> str:
    return f"{PAIR_PREFIX}{symbol}"


async def served_pairs(db: Database) -> list[PairEntry]:
    """Every pair that is not removed, with the ids of the models it serves."""
    async with db.connect() as conn:
        pairs = (await conn.execute(_PAIRS_SQL)).all()
        models = (await conn.execute(_MODELS_SQL)).all()
    chosen: dict[int, dict[str, int]] = {}
    for sid, kind, status, model_id in models:
        key = "shadow" if status == "shadow" else kind
        if key in ("persistence", "lstm", "shadow"):
            chosen.setdefault(sid, {})[key] = model_id
    return [
        PairEntry(sid, symbol, **chosen.get(sid, {}))
        for sid, symbol, status in pairs
        if status in SERVED_STATES
    ]


def pair_application(entry: PairEntry, options: ServeOptions) -> dict:
    args = {"symbol": entry.symbol, "symbol_id": entry.symbol_id, "model_store": options.model_store}
    if options.database_url_file:
        args["database_url_file"] = options.database_url_file
    return {
        "name": pair_app_name(entry.symbol),
        "route_prefix": None,  # reached through the router's handle, never over HTTP directly
        "import_path": PAIR_IMPORT,
        "args": args,
        "deployments": [
            {
                "name": PAIR_DEPLOYMENT,
                "num_replicas": 1,
                "user_config": entry.user_config,
                "ray_actor_options": {"num_cpus": PAIR_CPUS},
            }
        ],
    }


def router_application(options: ServeOptions) -> dict:
    return {
        "name": ROUTER_APP,
        "route_prefix": "/",
        "import_path": ROUTER_IMPORT,
        "args": options.args(),
        "deployments": [
            {"name": "Router", "num_replicas": 1, "ray_actor_options": {"num_cpus": ROUTER_CPUS}},
            {"name": "LivePredictor", "num_replicas": 1, "ray_actor_options": {"num_cpus": LIVE_CPUS}},
        ],
    }


def build_config(pairs: list[PairEntry], options: ServeOptions) -> dict:
    """A ``ServeDeploySchema`` document (the shape of ``serve deploy`` files and serveConfigV2).

    A database URL in ``options`` reaches the replicas as the path of its file, never in the document.
    """
    options = options.sealed()
    config = {
        "proxy_location": "HeadOnly",
        "http_options": {"host": options.host, "port": options.port},
        "applications": [router_application(options)] + [pair_application(p, options) for p in pairs],
    }
    if not options.access_log:
        config["logging_config"] = {"enable_access_log": False}
    return config


async def generate(db: Database, options: ServeOptions) -> dict:
    return build_config(await served_pairs(db), options)
