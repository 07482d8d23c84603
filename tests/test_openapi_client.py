"""A client generated from the running system's ``/openapi.json`` works: it lists the pairs, reads
candles and removes a pair with the token, and parses a refused write as the documented error.

Generated with ``openapi-python-client`` as a user of the API would, against a real ``cryptocast
up``. The generator pins older httpx and typer than the project uses, so it gets a virtual
environment of its own under the test's temporary directory (installed from the package index; no
other network). The generated package runs in this process: it needs only httpx, attrs and
python-dateutil, which the project already has.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.helpers import eventually_sync, running_up

pytestmark = pytest.mark.slow
GENERATOR = "openapi-python-client==0.29.1"
PACKAGE = "cryptocast_client"
INSTALL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a virtual environment holding the generator (and its ruff, which it
    runs on what it writes)."""
    venv = tmp_path_factory.mktemp("generator") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=INSTALL_TIMEOUT_S)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", GENERATOR],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    assert installed.returncode == 0, f"installing {GENERATOR} failed:\n{installed.stderr}"
    return venv / "bin"


def generate(generator: Path, spec: Path, out: Path) -> None:
    done = subprocess.run(
        [
            *(str(generator / "openapi-python-client"), "generate", "--path", str(spec)),
            *("--meta", "none", "--output-path", str(out / PACKAGE)),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"PATH": f"{generator}{os.pathsep}{os.environ['PATH']}"},
        timeout=120,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0 and "Warning" not in said and "Error" not in said, said


def load(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_reads_and_writes(
    tmp_path: Path, generator: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = secrets.token_urlsafe(32)
    settings = {
        "CRYPTOCAST_API_TOKEN": token,
        "CRYPTOCAST_REPLAY_SPEED": "60",
        "CRYPTOCAST_TRAIN_TRIALS": "1",
        "CRYPTOCAST_TRAIN_EPOCHS": "1",
    }
    with running_up(tmp_path, settings) as up:
        found = re.search(r"API: (http://\S+)", up.output)
        assert found, up.output
        api = found.group(1).rstrip("/")
        spec = tmp_path / "openapi.json"
        spec.write_bytes(httpx.get(api + "/openapi.json", timeout=30).raise_for_status().content)
        generate(generator, spec, tmp_path / "client")
        monkeypatch.syspath_prepend(str(tmp_path / "client"))
        client_module, models = load("client"), load("models")
        reader = client_module.Client(base_url=api, timeout=httpx.Timeout(30))
        writer = client_module.AuthenticatedClient(base_url=api, token=token, timeout=httpx.Timeout(30))

        # 1. the pairs, as typed objects
        listed = load("api.pairs.pairs").sync(client=reader)
        assert isinstance(listed, models.PairList), listed
        assert {p.symbol for p in listed.pairs} >= {"BTCUSDT", "ETHUSDT"}

        # 2. candles, once ingestion has stored some: typed rows, times parsed
        def candles() -> object:
            page = load("api.market_data.candles").sync("BTCUSDT", client=reader, limit=5)
            return page if isinstance(page, models.Candles) and page.candles else None

        page = eventually_sync(candles, "BTCUSDT candles through the generated client", timeout_s=120)
        assert page.columns[0] == "open_time" and len(page.candles) <= 5
        assert page.freshness.last_candle_time is not None and page.start < page.end

        # 3. a write: refused without the token (the documented error body), queued with it
        remove = load("api.pairs.remove_pair")
        refused = remove.sync_detailed(
            "ETHUSDT", client=client_module.AuthenticatedClient(base_url=api, token="x")
        )
        assert refused.status_code == 401 and isinstance(refused.parsed, models.ErrorBody), refused
        assert refused.parsed.error == "unauthorized" and "Bearer" in refused.parsed.message
        removed = remove.sync("ETHUSDT", client=writer)
        assert isinstance(removed, models.PairRemoved) and str(removed.kind) == "remove_pair", removed
        followed = load("api.commands.command").sync(removed.command_id, client=reader)
        assert isinstance(followed, models.Command) and followed.kind == "remove_pair", followed

        rest = up.interrupt()
        assert up.process.returncode == 0, rest[-2000:]
