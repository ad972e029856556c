"""Fault-test hooks, installed from outside the code they break, and only when asked.

`install()` runs at start-up (chat.apps) and does nothing unless a hook's setting is set;
settings refuse every hook when CHATSITE_ENV=production. So no hook is a branch on the
production path of chat.services or the stores: a process without the setting runs the
plain methods.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.conf import settings
from django.db import transaction

from chat.storage.base import AppendResult, NewMessage

log = logging.getLogger(__name__)


def install() -> None:
    text = settings.CHAT_TEST_CRASH_AFTER_STORE
    if not text:
        return
    from chat.storage.dynamodb import DynamoDBStore
    from chat.storage.local import LocalStore

    for store_class in (LocalStore, DynamoDBStore):
        _crash_after_append(store_class, text)


def _crash_after_append(store_class: Any, text: str) -> None:
    """CHAT_TEST_CRASH_AFTER_STORE (tests/faults): the process dies right after a message
    with exactly this text is durably stored, before its broadcast and its ack. The
    client's retry must get the original ack."""
    original = store_class.append_message

    def append_message(self: Any, new: NewMessage) -> AppendResult:
        result: AppendResult = original(self, new)
        if result.created and new.text == text:
            seq = result.message.seq

            def crash() -> None:
                log.warning("CHAT_TEST_CRASH_AFTER_STORE: exiting right after storing seq %s", seq)
                os._exit(70)

            # The local store's append may run inside the send's transaction (chat.services
            # _post_stored: the checks, the append and the count commit together): the
            # message is durable only once that commits, so the crash waits for the commit.
            transaction.on_commit(crash)
        return result

    store_class.append_message = append_message
