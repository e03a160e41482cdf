"""A MongoDB wire-protocol server on loopback and pymongo clients connected to it.

Imports happen inside the fixtures, so that without pymongo (which ships ``bson``) the test module
skips itself cleanly.
"""
import pytest


@pytest.fixture
def mongo_server():
    from tests.ext.pymongo._wire_server import WireServer

    with WireServer() as server:
        yield server


@pytest.fixture
def patched_pymongo():
    from aws_like_sdk.ext import pymongo as ext_pymongo

    ext_pymongo.patch()
    yield ext_pymongo
    ext_pymongo.unpatch()


@pytest.fixture
def mongo_client(mongo_server, patched_pymongo):
    """A client built after patch() (listeners are copied into a client when it is built)."""
    import pymongo

    client = pymongo.MongoClient(mongo_server.uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000,
                                 socketTimeoutMS=3000)
    yield client
    client.close()
