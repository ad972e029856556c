# ruff: noqa: F811 - the fixtures imported below are parameters of the tests
"""Moderation of changed messages: a report shows the text as reported and as it is now
(with the earlier versions), hiding an edited message blanks its edits in every replay,
a purge takes edited messages too, and a moderator's hidden message cannot be edited."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chat import moderation
from chat.moderation_models import Report
from chat.tests.test_moderation import (  # noqa: F401 - fixtures
    Connect,
    Sock,
    act,
    connect,
    join,
    mod,
    mod_client,
    send,
    user,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


async def change(sock: Sock, frame: dict[str, Any]) -> dict[str, Any]:
    mark = len(sock.frames)
    await sock.comm.send_json_to(frame)
    return await sock.take(lambda f: f["type"] in {"changed", "error"}, after=mark)


async def test_a_report_shows_the_text_as_reported_and_as_it_is_now(
    storage_backend: str, connect: Connect, mod: Any, mod_client: Client
) -> None:
    """Reported, then edited twice by its author: the report page shows the text as reported,
    the text now and both earlier versions in order; the room's moderation page shows the
    earlier versions too; a hide then leaves no text of any version on the report page."""
    alice, bob = await connect(await user("alice")), await connect(await user("bob"))
    ack = await send(bob, "general", "you are awful", "b1")
    report = {"action": "reportMessage", "roomId": "general", "messageId": ack["messageId"], "reason": "insult"}
    assert (await alice.request(report))["type"] == "reported"
    for text in ("you are ok", "you are great"):
        edit = {"action": "editMessage", "roomId": "general", "messageId": ack["messageId"], "message": text}
        assert (await change(bob, edit))["type"] == "changed"
    found = await sync_to_async(Report.objects.get)()
    assert found.text == "you are awful"
    report_page = f"/admin/moderation/reports/{found.pk}/"
    page = (await sync_to_async(mod_client.get)(report_page)).content.decode()
    assert "Message when reported</th><td>you are awful" in page
    assert '<span id="text-now">you are great</span>' in page and "(edited" in page
    earlier = page[page.index('id="earlier-versions">') :]
    assert earlier.index("<li>you are awful") < earlier.index("<li>you are ok") < earlier.index("</ol>")
    room_page = (await sync_to_async(mod_client.get)("/admin/moderation/rooms/general/")).content.decode()
    assert "<ol><li>you are awful</li><li>you are ok</li></ol>" in room_page  # under "edited 2 times"

    # Hidden: moderators still read every version. Deleted: only the report's own copy stays.
    await act(moderation.message_hide)(moderator=mod, room_id="general", message_id=ack["messageId"], reason="abuse")
    page = (await sync_to_async(mod_client.get)(report_page)).content.decode()
    assert 'class="removed">hidden</span>' in page and "<li>you are ok" in page
    await act(moderation.message_delete)(moderator=mod, room_id="general", message_id=ack["messageId"], reason="abuse")
    page = (await sync_to_async(mod_client.get)(report_page)).content.decode()
    assert 'class="removed">deleted</span>' in page and "Message when reported</th><td>you are awful" in page
    assert "you are ok" not in page and "you are great" not in page


async def test_hiding_an_edited_message_leaves_no_text_in_a_replay(connect: Connect, mod: Any) -> None:
    """After a moderator hides an edited message, a resume replays its edit with a blank text."""
    alice, bob = await connect(await user("alice")), await connect(await user("bob"))
    await join(alice, "general")
    ack = await send(bob, "general", "first", "b1")
    await change(bob, {"action": "editMessage", "roomId": "general", "messageId": ack["messageId"], "message": "bad"})
    await act(moderation.message_hide)(moderator=mod, room_id="general", message_id=ack["messageId"], reason="abuse")
    resumed = await join(await connect(await user("carol")), "general", last_seq=0)
    assert [e["type"] for e in resumed["events"]] == ["message", "messageEdited", "messageRemoved"]
    assert "bad" not in str(resumed) and "first" not in str(resumed)
    assert resumed["events"][2]["removedBy"] == "moderator"
    refused = await change(
        bob, {"action": "editMessage", "roomId": "general", "messageId": ack["messageId"], "message": "again"}
    )
    assert refused["code"] == "message_removed"


async def test_a_purge_takes_edited_messages_and_their_reactions_stop(connect: Connect, mod: Any) -> None:
    """Purging a user removes their edited messages; a reaction to one is then refused."""
    bob_user = await user("bob")
    alice, bob = await connect(await user("alice")), await connect(bob_user)
    ack = await send(bob, "general", "spam", "b1")
    await change(bob, {"action": "editMessage", "roomId": "general", "messageId": ack["messageId"], "message": "spam!"})
    removed = await act(moderation.user_messages_purge)(moderator=mod, user=bob_user, reason="spam")
    assert [m.message_id for m in removed] == [ack["messageId"]]
    refused = await change(
        alice, {"action": "addReaction", "roomId": "general", "messageId": ack["messageId"], "emoji": "👍"}
    )
    assert refused["code"] == "message_removed"
