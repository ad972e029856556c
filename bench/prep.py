"""Prepare a Chatsite data directory for the benchmark, without the sign-up flow.

Signing up thousands of users over HTTP spends minutes in password hashing. This script
runs against the same data directory the server will use (CHATSITE_DATA_DIR, before the
server starts): it migrates, bulk-creates users with unusable passwords (no hashing at
all), one signed-in session per user exactly as Django's login() would store it, and the
benchmark's rooms, then writes the Cookie headers as a JSON list.

    CHATSITE_DATA_DIR=var/bench/x python -m bench.prep --users 1000 --rooms b1x1000-0 --out cookies.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--rooms", default="", help="comma-separated room ids to create")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if "CHATSITE_DATA_DIR" not in os.environ:
        parser.error("set CHATSITE_DATA_DIR: the benchmark never touches the default var/ database")
    started = time.monotonic()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from chat import services

    call_command("migrate", interactive=False, verbosity=0)
    user_model = get_user_model()
    names = [f"bench{i:05d}" for i in range(args.users)]
    existing = set(user_model.objects.filter(username__in=names).values_list("username", flat=True))
    # make_password(None) is an unusable password: no hashing, and nobody can sign in with it.
    user_model.objects.bulk_create(
        [user_model(username=n, password=make_password(None)) for n in names if n not in existing], batch_size=500
    )
    users = {u.username: u for u in user_model.objects.filter(username__in=names)}
    codec = SessionStore()
    expires = timezone.now() + timedelta(days=2)
    sessions: list[Session] = []
    cookies: list[str] = []
    for name in names:
        user = users[name]
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        sessions.append(Session(session_key=key, session_data=codec.encode(data), expire_date=expires))
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={key}")
    Session.objects.bulk_create(sessions, batch_size=500)
    for room_id in filter(None, args.rooms.split(",")):
        services.room_create(room_id=room_id, name=room_id)
    args.out.write_text(json.dumps(cookies))
    print(f"prep: {len(cookies)} users and sessions in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
