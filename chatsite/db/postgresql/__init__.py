"""Django's PostgreSQL backend, logging in with the password of a rotated secret (see `chatsite.db.password`)."""
