"""Plugins through ``configure(plugins=...)``, the EC2 one against a real loopback IMDS server."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
from aws_like_sdk.core.context import Context
from aws_like_sdk.core.exceptions.exceptions import MissingPluginNames
from aws_like_sdk.core.plugins import ec2_plugin, ecs_plugin, elasticbeanstalk_plugin
from aws_like_sdk.core.plugins.utils import PLUGIN_MAPPING, get_plugin_modules
from aws_like_sdk.core.suppression import is_suppressed

IDENTITY = {'instanceId': 'i-0123456789abcdef0', 'availabilityZone': 'eu-west-1b', 'instanceType': 't3.micro',
            'imageId': 'ami-0abcdef1234567890', 'region': 'eu-west-1', 'accountId': '123456789012'}
EC2_META = {'instance_id': 'i-0123456789abcdef0', 'availability_zone': 'eu-west-1b', 'instance_type': 't3.micro',
            'ami_id': 'ami-0abcdef1234567890'}


class FakeIMDS(ThreadingHTTPServer):
    """Speaks the two IMDS endpoints the plugin uses; ``mode`` switches v2 / v1-only behaviour."""

    daemon_threads = True

    def __init__(self, mode='v2'):
        self.mode = mode
        self.requests = []
        self.suppressed = []
        super().__init__(('127.0.0.1', 0), IMDSHandler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return 'http://127.0.0.1:%d/latest/' % self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)


class IMDSHandler(BaseHTTPRequestHandler):
    TOKEN = 'token-abc'

    def log_message(self, *args):
        pass

    def _send(self, status, body=b''):
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        self.server.requests.append(('PUT', self.path, dict(self.headers)))
        if self.path != '/latest/api/token' or self.server.mode == 'v1':
            return self._send(403 if self.server.mode == 'v1' else 404)
        if self.headers.get('X-aws-ec2-metadata-token-ttl-seconds') != '60':
            return self._send(400)
        self._send(200, self.TOKEN.encode())

    def do_GET(self):
        self.server.requests.append(('GET', self.path, dict(self.headers)))
        if self.path != '/latest/dynamic/instance-identity/document':
            return self._send(404)
        token = self.headers.get('X-aws-ec2-metadata-token')
        if self.server.mode == 'v2' and token != self.TOKEN:
            return self._send(401)
        body = b'not json' if self.server.mode == 'garbage' else json.dumps(IDENTITY).encode()
        self._send(200, body)


@pytest.fixture
def imds(monkeypatch):
    servers = []

    def start(mode='v2'):
        server = FakeIMDS(mode)
        servers.append(server)
        monkeypatch.setattr(ec2_plugin, 'IMDS_URL', server.url)
        return server

    monkeypatch.setattr(ec2_plugin, 'TIMEOUT', 0.3)
    ec2_plugin._clear_cache()
    yield start
    ec2_plugin._clear_cache()
    for server in servers:
        server.close()


@pytest.fixture
def plugin_recorder(udp_sink):
    rec = AsyncAWSXRayRecorder()
    rec.configure(sampling=False, context=Context(), daemon_address=udp_sink.address, service='plugins')
    return rec


def emitted(rec, udp_sink, name='seg'):
    with rec.in_segment(name):
        pass
    docs = [d for d in udp_sink.wait_for(1) if d['name'] == name]
    udp_sink.clear()
    return docs[0]


def test_ec2_imdsv2_token_then_identity_document(imds, plugin_recorder, udp_sink):
    server = imds('v2')
    plugin_recorder.configure(plugins=('EC2Plugin',))
    doc = emitted(plugin_recorder, udp_sink)
    assert doc['aws']['ec2'] == EC2_META
    assert doc['origin'] == 'AWS::EC2::Instance'
    assert doc['aws']['xray']['sdk'] == 'aws_like_sdk for Python'
    methods = [(method, path) for method, path, _ in server.requests]
    assert methods == [('PUT', '/latest/api/token'), ('GET', '/latest/dynamic/instance-identity/document')]


def test_ec2_falls_back_to_imdsv1_when_no_token_is_given(imds, plugin_recorder, udp_sink):
    server = imds('v1')
    plugin_recorder.configure(plugins=['ec2plugin'])
    assert emitted(plugin_recorder, udp_sink)['aws']['ec2'] == EC2_META
    get = [headers for method, _, headers in server.requests if method == 'GET']
    assert len(get) == 1 and 'X-aws-ec2-metadata-token' not in get[0]


def test_ec2_result_is_cached_for_the_process(imds, plugin_recorder, udp_sink):
    server = imds('v2')
    plugin_recorder.configure(plugins=('EC2Plugin',))
    plugin_recorder.configure(plugins=('EC2Plugin',))
    assert len(server.requests) == 2
    assert emitted(plugin_recorder, udp_sink)['aws']['ec2'] == EC2_META


def test_ec2_unreachable_imds_contributes_nothing(imds, plugin_recorder, udp_sink, monkeypatch):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    monkeypatch.setattr(ec2_plugin, 'IMDS_URL', 'http://127.0.0.1:%d/latest/' % sock.getsockname()[1])
    sock.close()
    plugin_recorder.configure(plugins=('EC2Plugin',))
    doc = emitted(plugin_recorder, udp_sink)
    assert 'ec2' not in doc['aws'] and 'origin' not in doc


def test_ec2_silent_imds_times_out_quickly(imds, plugin_recorder, udp_sink, monkeypatch):
    # A listener that accepts connections but never answers, like a black-holed metadata address.
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(8)
    monkeypatch.setattr(ec2_plugin, 'IMDS_URL', 'http://127.0.0.1:%d/latest/' % sock.getsockname()[1])
    try:
        started = time.monotonic()
        plugin_recorder.configure(plugins=('EC2Plugin',))
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert elapsed < 5  # two requests of 0.3 s each; a generous bound, not a benchmark
    assert 'ec2' not in emitted(plugin_recorder, udp_sink)['aws']


def test_ec2_malformed_document_contributes_nothing(imds, plugin_recorder, udp_sink):
    imds('garbage')
    plugin_recorder.configure(plugins=('EC2Plugin',))
    assert 'ec2' not in emitted(plugin_recorder, udp_sink)['aws']
    assert ec2_plugin.parse_metadata_json('[1, 2]') == {}
    assert ec2_plugin.parse_metadata_json(json.dumps({'instanceId': 'i-1'})) == {'instance_id': 'i-1'}


def test_metadata_requests_run_with_tracing_suppressed(imds, monkeypatch):
    imds('v2')
    seen = []
    real_open = ec2_plugin._opener.open

    def spy(*args, **kwargs):
        seen.append(is_suppressed())
        return real_open(*args, **kwargs)

    monkeypatch.setattr(ec2_plugin._opener, 'open', spy)
    ec2_plugin.initialize()
    assert seen == [True, True]
    assert ec2_plugin.runtime_context == EC2_META


def test_ecs_plugin_records_the_container_host_name(plugin_recorder, udp_sink):
    plugin_recorder.configure(plugins=('ECSPlugin',))
    doc = emitted(plugin_recorder, udp_sink)
    assert doc['aws']['ecs'] == {'container': socket.gethostname()}
    assert doc['origin'] == 'AWS::ECS::Container'


def test_elastic_beanstalk_plugin_reads_its_conf_file(plugin_recorder, udp_sink, tmp_path, monkeypatch):
    conf = tmp_path / 'environment.conf'
    conf.write_text(json.dumps({'deployment_id': 3, 'version_label': 'v-3', 'environment_name': 'prod'}))
    monkeypatch.setattr(elasticbeanstalk_plugin, 'CONF_PATH', str(conf))
    plugin_recorder.configure(plugins=('ElasticBeanstalkPlugin',))
    doc = emitted(plugin_recorder, udp_sink)
    assert doc['aws']['elastic_beanstalk'] == {'deployment_id': 3, 'version_label': 'v-3', 'environment_name': 'prod'}
    assert doc['origin'] == 'AWS::ElasticBeanstalk::Environment'


def test_elastic_beanstalk_missing_or_bad_file_contributes_nothing(plugin_recorder, udp_sink, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(elasticbeanstalk_plugin, 'CONF_PATH', str(tmp_path / 'absent.conf'))
    plugin_recorder.configure(plugins=('ElasticBeanstalkPlugin',))
    assert 'elastic_beanstalk' not in emitted(plugin_recorder, udp_sink)['aws']
    bad = tmp_path / 'bad.conf'
    bad.write_text('{not json')
    monkeypatch.setattr(elasticbeanstalk_plugin, 'CONF_PATH', str(bad))
    plugin_recorder.configure(plugins=('ElasticBeanstalkPlugin',))
    assert 'elastic_beanstalk' not in emitted(plugin_recorder, udp_sink)['aws']


def test_last_successful_plugin_sets_origin_and_empty_tuple_wipes(imds, plugin_recorder, udp_sink, tmp_path,
                                                                  monkeypatch):
    imds('v2')
    monkeypatch.setattr(elasticbeanstalk_plugin, 'CONF_PATH', str(tmp_path / 'absent.conf'))
    plugin_recorder.configure(plugins=('ECSPlugin', 'EC2Plugin', 'ElasticBeanstalkPlugin'))
    doc = emitted(plugin_recorder, udp_sink)
    assert set(doc['aws']) == {'xray', 'ecs', 'ec2'}
    assert doc['origin'] == 'AWS::EC2::Instance'
    plugin_recorder.configure(plugins=())
    doc = emitted(plugin_recorder, udp_sink)
    assert set(doc['aws']) == {'xray'} and 'origin' not in doc


def test_get_plugin_modules_names(caplog_sdk):
    assert PLUGIN_MAPPING == {'elasticbeanstalkplugin': 'elasticbeanstalk_plugin', 'ec2plugin': 'ec2_plugin',
                              'ecsplugin': 'ecs_plugin'}
    assert get_plugin_modules(('EC2PLUGIN', 'ecs_plugin', 'ElasticBeanstalkPlugin')) == [
        ec2_plugin, ecs_plugin, elasticbeanstalk_plugin]
    assert get_plugin_modules('ECSPlugin') == [ecs_plugin]
    assert get_plugin_modules(('NoSuchPlugin', '../../os', 'ECSPlugin')) == [ecs_plugin]
    assert 'Unknown plugin' in caplog_sdk.text and 'Ignoring invalid plugin name' in caplog_sdk.text
    with pytest.raises(MissingPluginNames):
        get_plugin_modules(())
