"""Chatsite's settings under test: production's own (chatsite.settings) with a cheap password
hasher and the dashboard's counts written through.

Django's default hasher (PBKDF2, 1,000,000 iterations) spends about 0.6 s of CPU on every
password set or checked, and the suite sets hundreds: each user an end-to-end or browser
test signs up through the site, each user an in-process test creates with a password. What
the tests assert never depends on the hash's cost; the sign-in throttle's tests install a
counting hasher of their own. Django's testing guide recommends the same
("Speeding up the tests: password hashing").

pytest (pyproject.toml) and every daphne or manage.py process the tests start
(tests/fixtures/servers.py's base_env) load this module; `make run`, the image and the
benchmarks load chatsite.settings.
"""

from chatsite.env import env_float
from chatsite.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The dashboard's counts written in each message's transaction, unless a test's process says
# otherwise: a test reads a count as soon as the send is acked. Batching (the default's) has
# its own tests (analytics/tests/test_batch.py).
ANALYTICS_FLUSH_SECONDS = env_float("ANALYTICS_FLUSH_SECONDS", 0.0)
