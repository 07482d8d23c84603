"""Whether the fsspec backend a model-store URI names is installed, said in one line at start.

fsspec imports the package behind a URI's scheme (gcsfs for gs://, s3fs for s3://) only when a
store is first opened, which in a running system is inside a training actor or a Serve replica,
minutes after start. Settings and the model store check it up front instead, and the message names
the extra that provides it, so a missing package is a configuration error, not a traceback in a log.
"""

from __future__ import annotations

import fsspec
from fsspec.core import split_protocol

from cryptocast.settings import ConfigurationError

# Schemes whose backend an extra of this package installs.
EXTRAS = {"gs": "gcp", "gcs": "gcp"}
_SHOWN = 40  # a scheme is echoed back, never the rest of the URI (it may hold a credential)


def protocols(uri: str) -> list[str]:
    """The schemes of a URI, one per link of a chained URL (``simplecache::gs://…``); local is ``file``."""
    return [split_protocol(link)[0] or "file" for link in uri.split("::")]


def require_backend(uri: str) -> None:
    """Raise :class:`ConfigurationError` unless fsspec can open every scheme ``uri`` names."""
    for protocol in protocols(uri):
        shown = protocol[:_SHOWN]
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as exc:
            extra = EXTRAS.get(protocol)
            if extra is not None:
                raise ConfigurationError(
                    f"{shown}:// needs the {extra} extra: pip install 'cryptocast[{extra}]'"
                ) from None
            raise ConfigurationError(f"{shown}:// needs a package that is not installed: {exc}") from None
        except ValueError:
            raise ConfigurationError(
                f"{shown!r} is not a storage scheme fsspec knows (a local path, memory://, gs://, s3://, …)"
            ) from None
