"""The SDK version, also emitted as ``aws.xray.sdk_version`` in every segment."""
VERSION = '1.0.0'
