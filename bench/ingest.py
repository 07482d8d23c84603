"""Bulk candle writer vs raw asyncpg COPY; prints JSON. Same as ``cryptocast bench ingest``."""

import sys

from cryptocast.cli import app

if __name__ == "__main__":
    sys.exit(app(["bench", "ingest", *sys.argv[1:]]))
