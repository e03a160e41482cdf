"""The ``aws-like-sdk`` command: ``daemon``, ``traces`` and ``demo``.

The CLI is the one place that prints: everything else logs.
"""
import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import List, Optional

from .version import VERSION

log = logging.getLogger(__name__)


def _add_daemon_arguments(parser: argparse.ArgumentParser) -> None:
    from .daemon.store import DEFAULT_MAX_TRACES, default_db_path
    parser.add_argument('--udp', '-b', '--bind', metavar='HOST:PORT',
                        help='UDP address for segments (default: AWS_XRAY_DAEMON_ADDRESS, else 127.0.0.1:2000)')
    parser.add_argument('--tcp', '-t', '--bind-tcp', metavar='HOST:PORT',
                        help='HTTP address for sampling, the viewer and the JSON API (same default)')
    parser.add_argument('--db', metavar='PATH', help='SQLite store (default: %s)' % default_db_path())
    parser.add_argument('--max-traces', type=int, default=DEFAULT_MAX_TRACES, metavar='N',
                        help='keep at most N traces, deleting the oldest (default: %(default)s)')
    parser.add_argument('--max-age-hours', type=float, metavar='H', help='also delete traces older than H hours')
    parser.add_argument('--sampling-rules', metavar='FILE',
                        help='JSON rules served to SDKs (GetSamplingRules records or local v1/v2 rules)')
    parser.add_argument('--forward', action='append', default=[], metavar='xray|otlp=URL',
                        help='also send documents to X-Ray or an OTLP/HTTP endpoint (repeatable)')
    parser.add_argument('--endpoint-url', metavar='URL', help='X-Ray API endpoint for --forward xray')
    parser.add_argument('--region', help='AWS region for --forward xray (default: the standard chain)')
    parser.add_argument('--otlp-encoding', choices=('protobuf', 'json'), default='protobuf',
                        help='OTLP/HTTP body encoding (default: %(default)s)')
    parser.add_argument('--otlp-header', action='append', default=[], metavar='NAME=VALUE',
                        help='extra HTTP header for --forward otlp (repeatable)')
    parser.add_argument('--allow-remote', action='store_true',
                        help='allow listening on non-loopback addresses (anyone who can reach them can '
                             'read your traces)')
    parser.add_argument('--ready-file', metavar='PATH', help=argparse.SUPPRESS)
    parser.add_argument('--log-level', default='INFO', choices=('DEBUG', 'INFO', 'WARNING', 'ERROR'))


def _daemon_options(args: argparse.Namespace):
    from .daemon import DaemonOptions
    from .daemon.address import resolve_addresses
    from .daemon.forward import parse_forward_spec
    udp, tcp = resolve_addresses(args.udp, args.tcp)
    headers = {}
    for item in args.otlp_header:
        name, sep, value = item.partition('=')
        if not sep or not name.strip():
            raise ValueError('--otlp-header takes NAME=VALUE, got %r' % item)
        headers[name.strip()] = value.strip()
    specs = []
    for text in args.forward:
        spec = parse_forward_spec(text)
        spec.endpoint_url, spec.region = args.endpoint_url, args.region
        spec.otlp_encoding, spec.otlp_headers = args.otlp_encoding, headers
        specs.append(spec)
    if args.max_traces < 1:
        raise ValueError('--max-traces must be at least 1')
    return DaemonOptions(udp=udp, tcp=tcp, db=args.db, max_traces=args.max_traces,
                         max_age=args.max_age_hours * 3600 if args.max_age_hours else None,
                         sampling_rules=args.sampling_rules, forward=specs, allow_remote=args.allow_remote)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, handler)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass


def run_daemon(args: argparse.Namespace) -> int:
    """``aws-like-sdk daemon``: run until Ctrl-C or SIGTERM."""
    from .daemon import Daemon
    from .daemon.address import format_address, is_loopback
    logging.basicConfig(level=args.log_level, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        options = _daemon_options(args)
        daemon = Daemon(options)
    except Exception as exc:  # bad flags, busy port, missing botocore: one clear line
        print('aws-like-sdk daemon: %s' % exc, file=sys.stderr)
        return 2
    for address in (options.udp, options.tcp):
        if not is_loopback(address[0]):
            print('WARNING: listening on %s: anyone who can reach it can send segments and read your '
                  'traces' % format_address(address), file=sys.stderr)
    daemon.start()
    print('aws-like-sdk daemon %s' % VERSION)
    print('  segments (UDP):  %s' % format_address(daemon.udp_address))
    print('  sampling + API:  %s' % format_address(daemon.tcp_address))
    print('  store:           %s' % daemon.db_path)
    for forwarder in daemon.forwarders:
        print('  forwarding to:   %s' % getattr(forwarder, 'url', forwarder.name))
    print('  viewer:          %s' % daemon.viewer_url)
    sys.stdout.flush()
    if args.ready_file:
        _write_ready_file(args.ready_file, daemon)
    _wait_for_signal()
    print('stopping...')
    daemon.stop()
    counters = daemon.counters.snapshot()
    print('received %d, stored %d' % (counters.get('received', 0) + counters.get('received.api', 0),
                                     counters.get('stored', 0)))
    return 0


def _write_ready_file(path: str, daemon) -> None:
    # Written atomically so a waiting parent never reads half a file.
    data = {'udp': list(daemon.udp_address), 'tcp': list(daemon.tcp_address), 'db': daemon.db_path,
            'viewer': daemon.viewer_url, 'pid': os.getpid()}
    tmp = path + '.tmp'
    with open(tmp, 'w') as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def _source(args: argparse.Namespace):
    from .daemon.address import resolve_addresses
    from .daemon.client import ApiSource, StoreSource
    if args.db:
        if not os.path.exists(args.db):
            raise FileNotFoundError('no store at %s' % args.db)
        return StoreSource(args.db)
    return ApiSource(resolve_addresses(None, args.tcp)[1])


def _use_color(args: argparse.Namespace) -> bool:
    return not args.no_color and sys.stdout.isatty() and not os.environ.get('NO_COLOR')


def run_traces(args: argparse.Namespace) -> int:
    """``aws-like-sdk traces``: print trace trees, optionally following new ones."""
    from .daemon.client import SourceError, newest_first
    color = _use_color(args)
    try:
        source = _source(args)
        if args.trace:
            trace = source.trace(args.trace)
            if trace is None:
                print('no trace %s' % args.trace, file=sys.stderr)
                return 1
            _print_trace(trace, args, color)
            return 0
        filters = {'service': args.service, 'status': args.status, 'flag': args.flag,
                   'annotation': args.annotation, 'min_duration': args.min_duration}
        result = source.list(dict(filters, limit=args.limit))
        traces = list(reversed(newest_first(result['traces'])))  # oldest first, newest at the bottom
        for summary in traces:
            _print_trace(source.trace(summary['trace_id']) or {'summary': summary, 'roots': []}, args, color)
        if not traces and not args.follow:
            print('no traces yet', file=sys.stderr)
        if args.follow:
            _follow(source, filters, result['last_seq'], args, color)
        return 0
    except (SourceError, FileNotFoundError, ValueError) as exc:
        print('aws-like-sdk traces: %s' % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _print_trace(trace, args: argparse.Namespace, color: bool) -> None:
    from .daemon.render import render_trace
    if args.json:
        print(json.dumps(trace, default=str))
    else:
        print(render_trace(trace['summary'], trace['roots'], color))
        print()
    sys.stdout.flush()


def _follow(source, filters, cursor: int, args: argparse.Namespace, color: bool) -> None:
    # A trace is printed once it has settled (no change for SETTLE seconds), so a
    # request whose segments arrive over a few hundred milliseconds prints once, whole.
    settle = 1.0
    pending = {}
    printed = {}
    while True:
        result = source.list(dict(filters, after_seq=cursor, limit=1000))
        cursor = max(cursor, result.get('last_seq', cursor))
        now = time.monotonic()
        for summary in result['traces']:
            pending[summary['trace_id']] = (now, summary)
        for trace_id, (seen, summary) in sorted(pending.items(), key=lambda item: item[1][0]):
            if now - seen < settle:
                continue
            del pending[trace_id]
            if printed.get(trace_id) == summary['documents']:
                continue
            printed[trace_id] = summary['documents']
            trace = source.trace(trace_id)
            if trace is not None:
                _print_trace(trace, args, color)
        if len(printed) > 100000:
            printed.clear()
        time.sleep(args.interval)


def run_demo(args: argparse.Namespace) -> int:
    """``aws-like-sdk demo``: see :mod:`aws_like_sdk.daemon.demo`."""
    from .daemon.demo.runner import run
    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog='aws-like-sdk', description='aws_like_sdk tools: a local X-Ray '
                                     'compatible daemon with a trace viewer, a terminal trace reader, a demo.')
    parser.add_argument('--version', action='version', version='aws-like-sdk %s' % VERSION)
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True

    daemon = commands.add_parser('daemon', help='run the local daemon (UDP segments, sampling, viewer)')
    _add_daemon_arguments(daemon)
    daemon.set_defaults(func=run_daemon)

    traces = commands.add_parser('traces', help='print recent traces as trees')
    traces.add_argument('--limit', type=int, default=10, metavar='N', help='how many traces (default: 10)')
    traces.add_argument('--trace', metavar='ID', help='print only this trace')
    traces.add_argument('--follow', '-f', action='store_true', help='keep printing new traces as they arrive')
    traces.add_argument('--service', help='only traces through this service (segment name)')
    traces.add_argument('--status', help='HTTP status, e.g. 500 or 5xx')
    traces.add_argument('--flag', choices=('error', 'fault', 'throttle', 'ok'))
    traces.add_argument('--annotation', metavar='KEY=VALUE')
    traces.add_argument('--min-duration', type=float, metavar='MS', help='only traces at least this long')
    traces.add_argument('--tcp', metavar='HOST:PORT', help="the daemon's HTTP address (default: "
                        'AWS_XRAY_DAEMON_ADDRESS, else 127.0.0.1:2000)')
    traces.add_argument('--db', metavar='PATH', help='read this store file instead of asking the daemon')
    traces.add_argument('--json', action='store_true', help='one JSON trace per line')
    traces.add_argument('--no-color', action='store_true')
    traces.add_argument('--interval', type=float, default=0.5, help=argparse.SUPPRESS)
    traces.set_defaults(func=run_traces)

    demo = commands.add_parser('demo', help='start a daemon and an instrumented sample app, then show traces')
    demo.add_argument('--requests', type=int, default=36, metavar='N', help='requests to send (default: 36)')
    demo.add_argument('--exit', action='store_true', help='stop after printing instead of serving the viewer')
    demo.add_argument('--db', metavar='PATH', help='store for the demo daemon (default: a temporary file)')
    demo.add_argument('--tcp', metavar='HOST:PORT',
                      help='viewer address for the demo daemon (default: 127.0.0.1:2000, or a free port)')
    demo.set_defaults(func=run_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``aws-like-sdk`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
