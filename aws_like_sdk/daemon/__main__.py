"""``python -m aws_like_sdk.daemon``: same as ``aws-like-sdk daemon``."""
import sys

from aws_like_sdk.cli import main

if __name__ == '__main__':
    sys.exit(main(['daemon'] + sys.argv[1:]))
