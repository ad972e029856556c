"""Chatsite's additions to Django's database layer."""
