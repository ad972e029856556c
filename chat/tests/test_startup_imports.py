"""What a process on the embedded default imports as it starts.

Every daphne process and every `manage.py` command pays for its imports before it does any
work: a restart's new process listens that much later, and the test suite starts about 300 of
them (docs/performance.md, "Where the suite's time goes"). boto3 (Cognito, DynamoDB, S3) and
channels-redis with redis were about 0.3 s of Django's 1.24 s start, imported by modules every
process loads although the embedded default (built-in sign-in, in-memory layer, local store)
uses neither.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.servers import ROOT, base_env

HEAVY = ("boto3", "botocore", "s3transfer", "redis", "channels_redis")


def test_the_embedded_default_starts_without_the_aws_and_redis_clients(tmp_path: object) -> None:
    code = (
        "import json, sys, django; django.setup(); import chatsite.asgi, chatsite.urls; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    env = base_env(tmp_path, DJANGO_SETTINGS_MODULE="chatsite.settings")  # type: ignore[arg-type]
    env = {k: v for k, v in env.items() if not k.startswith(("COGNITO_", "AWS_", "DATABASE_URL"))}  # the default
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
