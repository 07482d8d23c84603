"""The database URL handed to Ray processes as a file, never as an argument.

Ray records what crosses into it: actor constructor arguments, Serve application ``args`` and
``runtime_env`` (environment variables included) end up in the GCS, in the Serve controller's
checkpoints, in ``serve status`` and in the session logs. A database URL carries the password, so a
driver writes it to a file only its user can read (0600, in ``DATA_DIR/secrets``, a 0700 folder)
and passes the file's path; the actor or replica reads the URL back from it.

A process on another machine (a Kubernetes worker pod) has no such file: it takes
``CRYPTOCAST_DATABASE_URL`` from its own environment, which the cluster's Secret sets on every pod.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from cryptocast.settings import get_settings

SECRETS_DIR = "secrets"
FILE_MODE = 0o600
DIR_MODE = 0o700
FILE_PREFIX = "database-url-"
NAME_HASH_CHARS = 16


def _file_name(url: str) -> str:
    """One file per server, user and database, named without the password (a password change
    rewrites the same file)."""
    where = make_url(url).render_as_string(hide_password=True)
    return FILE_PREFIX + hashlib.sha256(where.encode()).hexdigest()[:NAME_HASH_CHARS]


def write_url(url: str, folder: Path | None = None) -> str:
    """Store ``url`` in its owner-only file under ``folder`` (default ``DATA_DIR/secrets``); the path.

    The file is written under a temporary name created with mode 0600 and then renamed over the old
    one, so a reader never sees a partial URL and the password never sits in a wider-open file.
    """
    folder = (folder or get_settings().data_dir / SECRETS_DIR).resolve()
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    folder.chmod(DIR_MODE)
    path = folder / _file_name(url)
    partial = folder / f".{path.name}.{os.getpid()}"
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(url)
    partial.replace(path)
    return str(path)


def read_url(path: str | None) -> str:
    """The URL stored at ``path``; without the file (none given, or another machine),
    ``CRYPTOCAST_DATABASE_URL`` from the environment."""
    if path is not None:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            pass
    configured = get_settings().database_url
    if configured is None:
        missing = (
            "no database URL file was given" if path is None else f"the database URL file {path} is missing"
        )
        raise RuntimeError(f"{missing} and CRYPTOCAST_DATABASE_URL is not set in this process's environment")
    return configured.get_secret_value()
