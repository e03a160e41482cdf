"""``aws-like-sdk demo --exit`` end to end, on free ports."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_prints_trees_and_viewer_url(tmp_path):
    db = tmp_path / 'demo.sqlite3'
    result = subprocess.run([sys.executable, '-m', 'aws_like_sdk.cli', 'demo', '--exit', '--requests', '12',
                             '--tcp', '127.0.0.1:0', '--db', str(db)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '12/12 requests  (1 failed)' in out
    assert 'The daemon stored 12 traces' in out
    assert re.search(r'Open the viewer: +http://127\.0\.0\.1:\d+/', out)
    assert 'FAULT' in out and 'build_product_page' in out
    assert 'inventory-service  (segment)' in out   # the second service joined the trace
    assert 'sql: SELECT' in out
    assert db.exists()
