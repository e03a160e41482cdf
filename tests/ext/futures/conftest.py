"""Every test here starts and ends with the futures patch off."""
import pytest

from aws_like_sdk.ext import futures


@pytest.fixture
def patched():
    futures.patch()
    yield
    futures.unpatch()


@pytest.fixture(autouse=True)
def _unpatched_after():
    yield
    futures.unpatch()
