"""moto's real server on loopback, standing in for AWS."""
import boto3
import pytest
from moto.server import ThreadedMotoServer

from aws_like_sdk.ext import botocore as ext_botocore


@pytest.fixture(scope='module')
def moto_url():
    server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield 'http://%s:%d' % (host, port)
    server.stop()


@pytest.fixture
def aws_client(moto_url):
    """Build boto3 clients for the moto server with throwaway credentials."""
    def make(service):
        return boto3.client(service, region_name='us-east-1', endpoint_url=moto_url,
                            aws_access_key_id='testing', aws_secret_access_key='testing')
    return make


@pytest.fixture
def patched_botocore():
    ext_botocore.patch()
    yield
    ext_botocore.unpatch()


def capture_headers(client):
    """Record the headers of every request the client sends (a botocore ``before-send`` hook)."""
    seen = []

    def hook(request, **kwargs):
        seen.append({key: value.decode() if isinstance(value, bytes) else value
                     for key, value in request.headers.items()})

    client.meta.events.register('before-send', hook)
    return seen
