"""PynamoDB against moto's real server on loopback.

Imports happen inside the fixtures, so that without pynamodb or moto the test module skips itself
cleanly (a conftest that raised at import would be an error, not a skip).
"""
import itertools

import pytest

_tables = itertools.count()


@pytest.fixture(scope='module')
def moto_url():
    server_module = pytest.importorskip('moto.server')
    server = server_module.ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield 'http://%s:%d' % (host, port)
    server.stop()


@pytest.fixture
def order_model(moto_url):
    """A fresh PynamoDB model class bound to a new table name on the moto server."""
    from pynamodb.attributes import NumberAttribute, UnicodeAttribute
    from pynamodb.models import Model

    class Meta:
        table_name = 'orders-%d' % next(_tables)
        region = 'us-east-1'
        host = moto_url
        aws_access_key_id = 'testing'
        aws_secret_access_key = 'testing'
        connect_timeout_seconds = 5
        read_timeout_seconds = 5

    attrs = {'Meta': Meta, 'pk': UnicodeAttribute(hash_key=True), 'total': NumberAttribute(null=True)}
    return type('Order', (Model,), attrs)
