"""The HTTP API as FastAPI routers, one per resource, put together by :func:`.app.build_api`.

Reads go straight to PostgreSQL; forecasts go to the pair's deployment, found by application name
(``pair_<SYMBOL>``); pair changes and retrains become command rows for ingestion and training to
carry out. Every answer that carries data has a ``freshness`` block: the model that made it, the
last candle and the data lag. The Serve deployment that runs it is ``serve/router.py``; what the
routes share is ``services.ApiServices``, received through ``deps.Services``.
"""
