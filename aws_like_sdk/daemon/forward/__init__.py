"""Forwarding stored documents to distributed backends: the X-Ray API and OTLP/HTTP collectors."""
from .base import Forwarder
from .factory import ForwardSpec, build_forwarder, parse_forward_spec

__all__ = ['Forwarder', 'ForwardSpec', 'build_forwarder', 'parse_forward_spec']
