"""Template render subsegments from patch_template()."""
import logging

import pytest

from tests.ext.django.helpers import only_segment


def _renders(tree, depth=0, out=None):
    out = [] if out is None else out
    for sub in tree.get('subsegments', ()):
        if sub.get('namespace') == 'local':
            out.append((depth, sub['name']))
        _renders(sub, depth + 1, out)
    return out


def test_render_and_nested_includes(client, udp_sink):
    response = client.get('/page/')
    assert response.status_code == 200
    assert b'<p>one</p>' in response.content and b'<p>two</p>' in response.content
    segment = only_segment(udp_sink)
    assert _renders(segment) == [(0, 'page.html'), (1, 'row.html'), (1, 'row.html')]


def test_template_from_string_gets_default_name(client, udp_sink):
    response = client.get('/inline-template/')
    assert response.content == b'hi!'
    assert _renders(only_segment(udp_sink)) == [(0, 'template_render')]


@pytest.mark.parametrize('strategy', ['RUNTIME_ERROR', 'LOG_ERROR'])
def test_render_outside_segment_never_raises_or_emits(django_xray, udp_sink, caplog, strategy):
    from django.template.loader import render_to_string
    django_xray.context.context_missing = strategy
    with caplog.at_level(logging.DEBUG, logger='aws_like_sdk'):
        html = render_to_string('page.html', {'title': 'T', 'items': ['x']})
    assert '<p>x</p>' in html
    assert udp_sink.settle(quiet=0.1) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_template_error_propagates_and_is_recorded(django_xray, udp_sink):
    from django.template import Context, Template

    class Exploding:
        def __str__(self):
            raise ValueError('cannot render')

    template = Template('{{ value }}')
    with django_xray.in_segment('job'):
        with pytest.raises(ValueError, match='cannot render'):
            template.render(Context({'value': Exploding()}))
    (render,) = only_segment(udp_sink)['subsegments']
    assert render['name'] == 'template_render'
    assert render['fault'] is True
    assert render['cause']['exceptions'][0]['message'] == 'cannot render'


def test_unpatch_restores_original_render(django_xray, udp_sink):
    from django.template import Context, Template
    from django.template.base import Template as BaseTemplate

    from aws_like_sdk.ext.django.templates import patch_template, unpatch_template
    original = BaseTemplate.__dict__['render'].__wrapped__
    unpatch_template()
    try:
        assert BaseTemplate.__dict__['render'] is original
        with django_xray.in_segment('job'):
            assert Template('a').render(Context()) == 'a'
        assert 'subsegments' not in only_segment(udp_sink)
    finally:
        patch_template()
        patch_template()  # idempotent
    assert BaseTemplate.__dict__['render'].__wrapped__ is original
    udp_sink.clear()
    with django_xray.in_segment('job'):
        Template('b').render(Context())
    assert [s['name'] for s in only_segment(udp_sink)['subsegments']] == ['template_render']


def test_broken_instrumentation_keeps_render_result(django_xray, monkeypatch):
    from django.template import Context, Template

    from aws_like_sdk.ext.django import templates

    def explode(template):
        raise RuntimeError('instrumentation bug')

    monkeypatch.setattr(templates, '_template_name', explode)
    with django_xray.in_segment('job'):
        assert Template('{{ x }}').render(Context({'x': 5})) == '5'
