"""The Channels tutorial chat, as a standalone Django project: the peer a user would pick.

An AsyncWebsocketConsumer that joins a group per room at connect and group_sends every
message, under daphne, with channels_redis's RedisChannelLayer at its defaults.
"""
