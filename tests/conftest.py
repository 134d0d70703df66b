import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# shared/ lies beside the checkout (../shared) both here and in CI.
SHARED_REFERENCE = Path(os.environ.get("PITI_SHARED_REFERENCE", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {SHARED_REFERENCE}")
    return SHARED_REFERENCE
