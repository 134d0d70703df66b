from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Official checkpoint layouts and real PITI inputs, copied into the repository."""
    return FIXTURES


@pytest.fixture(scope="session", autouse=True)
def _private_piti_home(tmp_path_factory):
    """Tests never read or write the user's piti home (~/.cache/piti) or their weights folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PITI_HOME", str(tmp_path_factory.mktemp("piti-home")))
        mp.delenv("PITI_WEIGHTS_DIR", raising=False)
        mp.delenv("PITI_CACHE_DIR", raising=False)
        yield
