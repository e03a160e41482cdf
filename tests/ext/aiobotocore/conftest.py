"""aiobotocore clients against moto's real server on loopback; every test skips when aiobotocore is absent."""
import pytest

from tests.ext.botocore.conftest import aws_client, moto_url  # noqa: F401 - loopback moto server, boto3 clients


@pytest.fixture
def patched_aiobotocore():
    pytest.importorskip('aiobotocore')
    from aws_like_sdk.ext import aiobotocore as ext_aiobotocore
    ext_aiobotocore.patch()
    yield ext_aiobotocore
    ext_aiobotocore.unpatch()


@pytest.fixture
def aio_client(moto_url):  # noqa: F811
    """``aio_client('sqs')`` is an async context manager giving an aiobotocore client for the moto server."""
    session_module = pytest.importorskip('aiobotocore.session')
    session = session_module.get_session()

    def make(service, **kwargs):
        return session.create_client(service, region_name='us-east-1', endpoint_url=moto_url,
                                     aws_access_key_id='testing', aws_secret_access_key='testing', **kwargs)
    return make
