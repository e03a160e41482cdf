#!/usr/bin/env python
"""Generate aws_like_sdk/ext/resources/aws_para_whitelist.json from botocore's installed service models.

The file tells the botocore patch which request and response parameters of an AWS call may be copied
into a subsegment's ``aws`` block (snake_cased). It is derived mechanically from the public service
models with the policy below, so it can be regenerated whenever botocore ships new operations::

    python scripts/gen_aws_para_whitelist.py            # rewrite the data file
    python scripts/gen_aws_para_whitelist.py --check    # exit 1 if the file is out of date

Policy, applied to the top-level members of every operation's input and output shape:

* never: members marked ``sensitive`` or ``streaming``, blobs, and members that carry message content,
  opaque tokens or personal data (see ``_DENIED`` and ``_DENIED_SUFFIXES``);
* scalars (strings, enums, numbers, booleans, timestamps) are recorded as they are;
* small structures whose every field is itself recordable (e.g. DynamoDB ``ConsumedCapacity``) are
  recorded whole;
* lists are recorded as a count (``Messages`` -> ``message_count``), except lists of enum values,
  which are recorded as they are;
* maps are recorded as the list of their keys, never their values (``MessageAttributes`` ->
  ``message_attribute_names``).

A few renames keep the field names the X-Ray console shows for well-known resources (``_RENAMES``).
"""
import argparse
import json
import os
import re
import sys
from typing import Any, Dict, Optional

import botocore
import botocore.session

# botocore service name -> key in the file (the endpoint prefix, which the patch looks up).
SERVICES = ('sns', 'dynamodb', 'sqs', 'lambda', 's3', 'sagemaker-runtime')

OUTPUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      'aws_like_sdk', 'ext', 'resources', 'aws_para_whitelist.json')

_SCALARS = frozenset(('string', 'boolean', 'integer', 'long', 'float', 'double', 'timestamp'))
_MAX_STRUCTURE_FIELDS = 16
_MAX_DEPTH = 4

# Message content, payloads, policies and personal data: never recorded, whatever their type.
_DENIED = frozenset((
    'Body', 'MessageBody', 'Message', 'Subject', 'Payload', 'ClientContext', 'LogResult', 'Policy',
    'PhoneNumber', 'Endpoint', 'Tagging', 'ExpressionAttributeNames', 'ExpressionAttributeValues',
    'Password', 'SecretKey', 'Code', 'Environment', 'CustomAttributes',
))
# Opaque pagination tokens, receipt handles and the like.
_DENIED_SUFFIXES = ('Token', 'Handle', 'Secret', 'Password')
# S3 grants name grantees (e-mail addresses, account ids); checksum values are noise.
_DENIED_PATTERN = re.compile(r'^(Grant[A-Z]|Checksum(CRC|SHA|MD5|XXHASH))')

# (service key, member) -> field name: the names the X-Ray console uses for these resources.
_RENAMES = {
    ('s3', 'Bucket'): 'bucket_name',
    ('dynamodb', 'RequestItems'): 'table_names',
}

_FIRST_CAP = re.compile('(.)([A-Z][a-z]+)')
_ALL_CAP = re.compile('([a-z0-9])([A-Z])')


def snake(name: str) -> str:
    """``QueueUrl`` -> ``queue_url`` (the same rule as ``aws_like_sdk.ext.util.to_snake_case``)."""
    return _ALL_CAP.sub(r'\1_\2', _FIRST_CAP.sub(r'\1_\2', name)).lower()


def singular(name: str) -> str:
    """A naive English singular, enough for AWS member names (``entries`` -> ``entry``)."""
    if name.endswith('ies'):
        return name[:-3] + 'y'
    if name.endswith(('sses', 'xes')):
        return name[:-2]
    if name.endswith('s') and not name.endswith('ss'):
        return name[:-1]
    return name


def _denied(name: str, shape: Any) -> bool:
    meta = shape.metadata
    return (name in _DENIED or name.endswith(_DENIED_SUFFIXES) or _DENIED_PATTERN.match(name)
            or meta.get('sensitive')
            or meta.get('streaming') or shape.type_name == 'blob')


def _plain_fields(shape: Any, depth: int = 0) -> Optional[int]:
    """Number of leaf fields when every nested field is recordable, else None."""
    if depth > _MAX_DEPTH or shape.metadata.get('sensitive') or shape.type_name == 'blob':
        return None
    if shape.type_name in _SCALARS:
        return 1
    if shape.type_name == 'list':
        return _plain_fields(shape.member, depth + 1)
    if shape.type_name == 'map':
        return _plain_fields(shape.value, depth + 1)
    if shape.type_name == 'structure':
        total = 0
        for name, member in shape.members.items():
            if _denied(name, member):
                return None
            count = _plain_fields(member, depth + 1)
            if count is None:
                return None
            total += count
        return total
    return None


def classify(service: str, name: str, shape: Any):
    """Return ``('param', None)``, ``('descriptor', {...})`` or None for one top-level member."""
    if _denied(name, shape):
        return None
    rename = _RENAMES.get((service, name))
    kind = shape.type_name
    if kind in _SCALARS:
        return ('descriptor', {'rename_to': rename}) if rename else ('param', None)
    if kind == 'structure':
        fields = _plain_fields(shape)
        if fields is None or fields > _MAX_STRUCTURE_FIELDS:
            return None
        return ('descriptor', {'rename_to': rename}) if rename else ('param', None)
    if kind == 'list':
        if shape.member.type_name == 'string' and shape.member.enum:
            return ('descriptor', {'rename_to': rename}) if rename else ('param', None)
        return ('descriptor', {'list': True, 'get_count': True,
                               'rename_to': rename or singular(snake(name)) + '_count'})
    if kind == 'map':
        return ('descriptor', {'map': True, 'get_keys': True,
                               'rename_to': rename or singular(snake(name)) + '_names'})
    return None


def _section(service: str, shape: Any) -> Dict[str, Any]:
    params, descriptors = [], {}
    if shape is None:
        return {'parameters': params, 'descriptors': descriptors}
    for name, member in shape.members.items():
        result = classify(service, name, member)
        if result is None:
            continue
        kind, descriptor = result
        if kind == 'param':
            params.append(name)
        else:
            descriptors[name] = descriptor
    return {'parameters': sorted(params), 'descriptors': dict(sorted(descriptors.items()))}


def build() -> Dict[str, Any]:
    """Build the whole document from the installed botocore models."""
    session = botocore.session.get_session()
    services: Dict[str, Any] = {}
    for service_name in SERVICES:
        model = session.get_service_model(service_name)
        key = model.endpoint_prefix
        operations = {}
        for op_name in sorted(model.operation_names):
            op = model.operation_model(op_name)
            request = _section(key, op.input_shape)
            response = _section(key, op.output_shape)
            entry = {}
            if request['parameters']:
                entry['request_parameters'] = request['parameters']
            if request['descriptors']:
                entry['request_descriptors'] = request['descriptors']
            if response['parameters']:
                entry['response_parameters'] = response['parameters']
            if response['descriptors']:
                entry['response_descriptors'] = response['descriptors']
            operations[op_name] = entry
        services[key] = {'operations': operations}
    return {
        'generated_by': 'scripts/gen_aws_para_whitelist.py',
        'botocore_version': botocore.__version__,
        'services': services,
    }


def render(document: Dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=False) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true', help='fail when the data file is out of date')
    parser.add_argument('--output', default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        with open(args.output, encoding='utf-8') as handle:
            current = json.load(handle)
        fresh = json.loads(text)
        current.pop('botocore_version', None)
        fresh.pop('botocore_version', None)
        if current != fresh:
            print('%s is out of date; run %s' % (args.output, sys.argv[0]))
            return 1
        return 0
    with open(args.output, 'w', encoding='utf-8') as handle:
        handle.write(text)
    print('wrote %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
