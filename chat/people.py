"""People and rooms: rooms users make, private rooms and invitations, direct messages, member
lists, roles and mutes (docs/protocol.md "Rooms users make").

Services in the house style: check (chat.people_rules, pure), write through the store
(`services.store_call`), then tell. Two kinds of news go out, both after the write returned:
- membership changes (memberAdded, memberRemoved, memberUpdated) and new settings
  (roomUpdated) are room events on the room's sequence (`services.room_change_sync`), so a
  resume replays them like messages;
- a user's room list changes (roomAdded, roomChanged, roomRemoved) go to every socket of that
  user on every process, through the user's channel-layer group (chat.broadcast.user_frame).

Synchronous, like chat.moderation: the consumer runs `handle` off the event loop; the room
views and POST /api/rooms call `room_create_named`. Reads never write. A membership change
and its room event are one atomic write on both backends (one ORM transaction; one
TransactWriteItems on DynamoDB): never a membership whose event is missing, nor an event
without its change.

Access follows docs/auth.md: a private room (and a DM) does not exist for a non-member (the
answer is unknown_room, as for no room at all), and that check comes before any other, so no
answer tells a non-member more. Moderators keep their powers over private rooms; DMs they see
only through reports (chat.services.room_readable).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.identity import Identity
from chat import broadcast, events, people_rules, protocol, quota, services
from chat import people_protocol as pp
from chat.errors import ChatError, ErrorCode
from chat.presence_view import presence_of
from chat.records import MEMBER, OWNER, Membership, NewEvent, Room
from chat.storage import get_store

log = logging.getLogger(__name__)


# Users -----------------------------------------------------------------------------------


def _user_by_username(username: str) -> tuple[str, str]:
    """(user id, username) of the active user of this name (exact first, else the one
    case-insensitive match); unknown_user otherwise."""
    users = get_user_model().objects.filter(is_active=True)
    user = users.filter(username=username).first()
    if user is None:
        matches = list(users.filter(username__iexact=username)[:2])
        user = matches[0] if len(matches) == 1 else None
    if user is None:
        raise ChatError(ErrorCode.UNKNOWN_USER, f"no user is called {username!r}")
    return str(user.pk), str(user.username)


def _usernames(user_ids: list[str]) -> dict[str, str]:
    pks = [int(u) for u in user_ids if u.isdigit()]
    rows = get_user_model().objects.filter(pk__in=pks).values_list("pk", "username")
    return {str(pk): str(name) for pk, name in rows}


# Telling ---------------------------------------------------------------------------------


def _tell_user(user_id: str, frame: dict[str, Any], *, leave_room: str | None = None) -> None:
    """Send a per-user frame once the caller's transaction (if any) committed."""
    text = protocol.encode(frame)

    def send() -> None:
        try:
            async_to_sync(broadcast.user_frame)(user_id, text, leave_room=leave_room)
        except ValueError:  # a user id that cannot name a group (not a Django user)
            log.warning("no user group for %r: frame %s not sent", user_id, frame.get("type"))

    transaction.on_commit(send, robust=True)


def _member_change(room_id: str, kind: str, *, user_id: str, username: str, role: str | None = None) -> bool:
    """A membership change and its room event on the room's sequence, in one atomic write
    on either backend (`ChatStore.change_membership`); the event goes out after it. False
    when there was nothing to change (nothing written, nothing told)."""
    new = NewEvent(
        room_id=room_id,
        type=kind,
        data=events.member_data(user_id=user_id, username=username, role=role),
        timestamp=services.utcnow(),
        ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS,
    )
    event = services.room_change_sync(
        get_store().change_membership,
        stored=lambda e: [e] if e is not None else [],
        user_id=user_id,
        event=new,
        role=role or MEMBER,
        now=services.utcnow(),
    )
    return event is not None


def _summary(room: Room, membership: Membership | None, *, viewer: str | None = None) -> dict[str, Any]:
    """A room as `viewer`'s list shows it: a DM is named after the others in it."""
    title = None
    if room.direct and viewer is not None:
        others = [m.user_id for m in services.store_call(get_store().members_page, room_id=room.room_id, limit=50)]
        names = _usernames([u for u in others if u != viewer])
        title = ", ".join(sorted(names.values(), key=str.casefold)) or room.name
    return people_rules.room_summary(room, membership, title=title)


def _tell_room_added(room: Room, user_id: str) -> None:
    membership = services.store_call(get_store().get_membership, room_id=room.room_id, user_id=user_id)
    _tell_user(user_id, pp.room_added_frame(_summary(room, membership, viewer=user_id)))


def _tell_members_changed(room: Room) -> None:
    """roomChanged to every member (their lists show the new name, topic or kind)."""
    after = None
    while True:
        page = services.store_call(get_store().members_page, room_id=room.room_id, after_user_id=after, limit=500)
        for membership in page:
            _tell_user(membership.user_id, pp.room_changed_frame(_summary(room, membership, viewer=membership.user_id)))
        if len(page) < 500:
            return
        after = page[-1].user_id


# Reading a room ------------------------------------------------------------------------------


def _room_for(identity: Identity, room_id: str) -> tuple[Room, Membership | None]:
    """The room and the caller's membership, if the caller may read it; unknown_room otherwise."""
    room = services.room_get(room_id)
    if room is None or not services.room_readable(room=room, identity=identity):
        raise ChatError(ErrorCode.UNKNOWN_ROOM, f"room {room_id!r} does not exist", room_id=room_id)
    membership = services.store_call(get_store().get_membership, room_id=room_id, user_id=identity.user_id)
    return room, membership


# Rooms users make ------------------------------------------------------------------------


def room_create_named(*, identity: Identity, name: str, private: bool = False, topic: str = "") -> Room:
    """Create a room by its name alone; the creator is its owner (createRoom, POST /api/rooms).

    A name is taken only when a room the caller can see has it (room_name_taken): creating
    never opens an existing room. The id is the name's slug and a random tail
    (people_rules.room_id_for_name), so neither the answer nor the id depends on rooms the
    caller cannot see: a private room's name or id, given here, answers exactly as a name
    no room has (docs/auth.md). A tail that some room already holds is drawn again.
    """
    name = people_rules.clean_room_name(name)
    topic = people_rules.clean_topic(topic)
    key = people_rules.room_name_key(name)
    if any(people_rules.same_name(room, key) for room in services.room_list(identity=identity)):
        raise ChatError(ErrorCode.ROOM_NAME_TAKEN, f"a room called {name!r} exists: open it or choose another name")
    store = get_store()
    if not (identity.is_moderator or identity.is_bot):
        now = services.utcnow()
        made = services.store_call(store.room_creation_times, created_by=identity.user_id, since=now - quota.DAY)
        quota.rooms_created_today(identity=identity, now=now, created=made)
    for _ in range(_ID_DRAWS):
        room_id = people_rules.room_id_for_name(name, tail=people_rules.new_room_id_tail())
        room, created = services.store_call(
            store.create_room,
            room_id=room_id,
            name=name,
            created_by=identity.user_id,
            now=services.utcnow(),
            private=private,
            topic=topic,
        )
        if created:
            break
    else:  # 36**6 tails per name: only a broken random source gets here
        raise RuntimeError(f"no free room id for {name!r} in {_ID_DRAWS} draws")
    services.store_call(store.add_member, room_id=room_id, user_id=identity.user_id, role=OWNER, now=services.utcnow())
    _tell_room_added(room, identity.user_id)
    return room


_ID_DRAWS: Final = 8


def room_update(*, identity: Identity, room_id: str, name: str | None, topic: str | None, private: bool | None) -> Room:
    """An owner (or a moderator) renames the room, changes its topic, or makes it private or public."""
    room, membership = _room_for(identity, room_id)
    people_rules.require_manager(room=room, membership=membership, is_moderator=identity.is_moderator)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = people_rules.clean_room_name(name)
    if topic is not None:
        changes["topic"] = people_rules.clean_topic(topic)
    if private is not None:
        changes["private"] = private
    if not changes:
        return room
    update = services.room_change_sync(
        get_store().update_room,
        stored=services.event_of,
        room_id=room_id,
        now=services.utcnow(),
        ttl_seconds=settings.CHAT_MESSAGE_TTL_SECONDS,
        **changes,
    )
    if update.event is None:
        return update.room
    if update.room.private and not room.private:
        transaction.on_commit(lambda: async_to_sync(broadcast.room_access)(room_id), robust=True)
    _tell_members_changed(update.room)
    return update.room


# Members ---------------------------------------------------------------------------------


def member_add(*, identity: Identity, room_id: str, username: str | None) -> None:
    """Invite `username` (owners and moderators), or join a public room yourself (no username)."""
    if username is None:
        room, membership = _room_for(identity, room_id)
        if room.direct:
            raise ChatError(ErrorCode.DIRECT_ROOM, "a direct message has the members it was opened with")
        if membership is not None:
            return
        if room.private and not identity.is_moderator:
            raise ChatError(ErrorCode.NOT_MEMBER, "a private room is joined by invitation")
        if room.archived:
            raise ChatError(ErrorCode.ROOM_ARCHIVED, "this room is archived")
        user_id, name = identity.user_id, identity.username
    else:
        room, membership = _room_for(identity, room_id)
        people_rules.require_manager(room=room, membership=membership, is_moderator=identity.is_moderator)
        user_id, name = _user_by_username(username)
        if user_id == identity.user_id:
            raise ChatError(ErrorCode.SELF_INVITE, "you cannot invite yourself")
    if room_id == protocol.DEFAULT_ROOM:
        services.room_stored(room_id=room_id)  # the default room is stored by its first write
    member_added(room=room, user_id=user_id, username=name)


def member_added(*, room: Room, user_id: str, username: str) -> bool:
    """Make the user a member (checked by the caller: an owner, a moderator, or a public
    room's reader): memberAdded on the room's sequence, roomAdded to their sockets. False
    when they were a member already (nothing changed, nothing told)."""
    with transaction.atomic():
        if not _member_change(room.room_id, events.MEMBER_ADDED, user_id=user_id, username=username, role=MEMBER):
            return False
        _tell_room_added(room, user_id)
    return True


def member_remove(*, identity: Identity, room_id: str, username: str | None) -> None:
    """Take `username` out (owners and moderators), or leave the room yourself (no username).

    Their sockets leave the room at once (the roomRemoved frame, on every process)."""
    store = get_store()
    room, membership = _room_for(identity, room_id)
    if username is None:
        user_id, name = identity.user_id, identity.username
        if membership is None:
            raise ChatError(ErrorCode.NOT_MEMBER, "you are not a member of this room")
    else:
        if room.direct:
            raise ChatError(ErrorCode.DIRECT_ROOM, "a direct message has the members it was opened with")
        people_rules.require_manager(room=room, membership=membership, is_moderator=identity.is_moderator)
        user_id, name = _user_by_username(username)
        if services.store_call(store.get_membership, room_id=room_id, user_id=user_id) is None:
            raise ChatError(ErrorCode.NOT_MEMBER, f"{name} is not a member of this room")
    if not room.direct:
        members = _all_members(room_id)
        people_rules.check_owner_stays(members=members, user_id=user_id, new_role=None)
    member_removed(room_id=room_id, user_id=user_id, username=name)


def member_removed(*, room_id: str, user_id: str, username: str) -> bool:
    """Take the member out (owners, and moderators from the admin, alike: checked by the
    caller): memberRemoved on the room's sequence, so the others' member lists drop them
    at once, and roomRemoved to their sockets, which leave the room (and their presence
    leaves it with them, chat.ephemeral). False when they were no member."""
    with transaction.atomic():
        if not _member_change(room_id, events.MEMBER_REMOVED, user_id=user_id, username=username):
            return False
        _tell_user(user_id, pp.room_removed_frame(room_id), leave_room=room_id)
    return True


def _all_members(room_id: str) -> list[Membership]:
    members: list[Membership] = []
    while True:
        page = services.store_call(
            get_store().members_page, room_id=room_id, after_user_id=members[-1].user_id if members else None, limit=500
        )
        members += page
        if len(page) < 500:
            return members


def member_set_role(*, identity: Identity, room_id: str, username: str, role: str) -> None:
    """An owner (or moderator) makes a member an owner, or an owner a member (the room keeps one)."""
    role = people_rules.check_role(role)
    room, membership = _room_for(identity, room_id)
    people_rules.require_manager(room=room, membership=membership, is_moderator=identity.is_moderator)
    user_id, name = _user_by_username(username)
    target = services.store_call(get_store().get_membership, room_id=room_id, user_id=user_id)
    if target is None:
        raise ChatError(ErrorCode.NOT_MEMBER, f"{name} is not a member of this room")
    if target.role == role:
        return
    people_rules.check_owner_stays(members=_all_members(room_id), user_id=user_id, new_role=role)
    with transaction.atomic():
        if not _member_change(room_id, events.MEMBER_UPDATED, user_id=user_id, username=name, role=role):
            if services.store_call(get_store().get_membership, room_id=room_id, user_id=user_id) is None:
                raise ChatError(ErrorCode.NOT_MEMBER, f"{name} is not a member of this room")
            return  # the role as it is (a concurrent change made it so)
        changed = services.store_call(get_store().get_membership, room_id=room_id, user_id=user_id)
        if changed is not None:
            _tell_user(user_id, pp.room_changed_frame(_summary(room, changed, viewer=user_id)))


def room_mute(*, identity: Identity, room_id: str, muted: bool) -> None:
    """Mute (or unmute) a room for yourself: it stays in your list, quietly."""
    room, membership = _room_for(identity, room_id)
    if membership is None:
        raise ChatError(ErrorCode.NOT_MEMBER, "you are not a member of this room")
    changed = services.store_call(get_store().set_membership, room_id=room_id, user_id=identity.user_id, muted=muted)
    if changed is None:
        raise ChatError(ErrorCode.NOT_MEMBER, "you are not a member of this room")
    _tell_user(identity.user_id, pp.room_changed_frame(_summary(room, changed, viewer=identity.user_id)))


def room_members(*, identity: Identity, room_id: str, after: str | None) -> dict[str, Any]:
    """The `members` answer: a page of the room's members, each with their presence."""
    _room_for(identity, room_id)
    size = settings.CHAT_MEMBERS_PAGE
    page = services.store_call(get_store().members_page, room_id=room_id, after_user_id=after, limit=size)
    ids = [m.user_id for m in page]
    names = _usernames(ids)
    presence = presence_of(ids)
    members = [
        {
            "userId": m.user_id,
            "username": names.get(m.user_id, m.user_id),
            "role": m.role,
            "status": presence.get(m.user_id, {}).get("status", "offline"),
            "lastSeenAt": presence.get(m.user_id, {}).get("lastSeenAt"),
        }
        for m in page
    ]
    return pp.members_frame(room_id, members, ids[-1] if len(page) == size else None)


# Room lists ------------------------------------------------------------------------------


def rooms_of(*, identity: Identity) -> list[dict[str, Any]]:
    """The caller's rooms and DMs, most recently active first (a key and an index query)."""
    store = get_store()
    memberships = {m.room_id: m for m in services.store_call(store.rooms_of_user, user_id=identity.user_id)}
    rooms = services.store_call(store.get_rooms, room_ids=list(memberships))
    visible = [r for r in rooms if identity.is_moderator or not r.archived]
    return people_rules.by_last_activity(
        [_summary(r, memberships[r.room_id], viewer=identity.user_id) for r in visible]
    )


BROWSE_LIMIT = 200


def rooms_browse(*, identity: Identity, query: str | None) -> list[dict[str, Any]]:
    """Public rooms to join (archived ones and DMs never), with `joined` for the caller's."""
    store = get_store()
    mine = {m.room_id: m for m in services.store_call(store.rooms_of_user, user_id=identity.user_id)}
    wanted = (query or "").strip().casefold()
    found = []
    # Public rooms by key or index (PublicRoomsIndex on DynamoDB), never a scan of every room.
    for room in services.public_room_list():
        if room.private or room.direct or room.archived:
            continue
        if wanted and wanted not in room.name.casefold() and wanted not in room.room_id:
            continue
        summary = people_rules.room_summary(room, mine.get(room.room_id))
        summary["joined"] = room.room_id in mine
        found.append(summary)
    return people_rules.by_last_activity(found)[:BROWSE_LIMIT]


# Direct messages -------------------------------------------------------------------------


def direct_open(*, identity: Identity, usernames: tuple[str, ...]) -> Room:
    """The DM of the caller and these people: the same room however often, by whomever,
    from whichever process it is opened (its id is a digest of its people; create_room is
    atomic and adding a member is idempotent)."""
    others = [_user_by_username(name) for name in usernames]
    names = dict(others)
    names[identity.user_id] = identity.username
    people = people_rules.check_direct_people(
        opener=identity.user_id, others=[u for u, _ in others], max_members=settings.CHAT_MAX_DIRECT_MEMBERS
    )
    room_id = people_rules.direct_room_id(people)
    store = get_store()
    title = ", ".join(sorted((names[u] for u in people), key=str.casefold))[:100]
    room, _ = services.store_call(
        store.create_room, room_id=room_id, name=title, created_by=identity.user_id, now=services.utcnow(), direct=True
    )
    for user_id in people:
        if _member_change(room_id, events.MEMBER_ADDED, user_id=user_id, username=names[user_id], role=MEMBER):
            _tell_room_added(room, user_id)
    return room


# The socket's actions ----------------------------------------------------------------------------


def _create(identity: Identity, c: pp.CreateRoom) -> dict[str, Any]:
    room = room_create_named(identity=identity, name=c.name, private=c.private, topic=c.topic)
    membership = services.store_call(get_store().get_membership, room_id=room.room_id, user_id=identity.user_id)
    return pp.done_frame("createRoom", room_id=room.room_id, room=people_rules.room_summary(room, membership))


def _update(identity: Identity, c: pp.UpdateRoom) -> dict[str, Any]:
    room_update(identity=identity, room_id=c.room_id, name=c.name, topic=c.topic, private=c.private)
    return pp.done_frame("updateRoom", room_id=c.room_id)


def _add(identity: Identity, c: pp.AddMember) -> dict[str, Any]:
    member_add(identity=identity, room_id=c.room_id, username=c.username)
    return pp.done_frame("addMember", room_id=c.room_id)


def _remove(identity: Identity, c: pp.RemoveMember) -> dict[str, Any]:
    member_remove(identity=identity, room_id=c.room_id, username=c.username)
    return pp.done_frame("removeMember", room_id=c.room_id)


def _role(identity: Identity, c: pp.SetMemberRole) -> dict[str, Any]:
    member_set_role(identity=identity, room_id=c.room_id, username=c.username, role=c.role)
    return pp.done_frame("setMemberRole", room_id=c.room_id)


def _mute(identity: Identity, c: pp.MuteRoom) -> dict[str, Any]:
    room_mute(identity=identity, room_id=c.room_id, muted=c.muted)
    return pp.done_frame("muteRoom", room_id=c.room_id)


def _list(identity: Identity, c: pp.ListRooms) -> dict[str, Any]:
    return pp.rooms_frame(rooms_of(identity=identity))


def _browse(identity: Identity, c: pp.BrowseRooms) -> dict[str, Any]:
    return pp.browse_frame(rooms_browse(identity=identity, query=c.query))


def _direct(identity: Identity, c: pp.OpenDirect) -> dict[str, Any]:
    room = direct_open(identity=identity, usernames=c.usernames)
    membership = services.store_call(get_store().get_membership, room_id=room.room_id, user_id=identity.user_id)
    summary = _summary(room, membership, viewer=identity.user_id)
    return pp.done_frame("openDirect", room_id=room.room_id, room=summary)


def _members(identity: Identity, c: pp.Members) -> dict[str, Any]:
    return room_members(identity=identity, room_id=c.room_id, after=c.after)


_ACTIONS: dict[type, Callable[[Identity, Any], dict[str, Any]]] = {
    pp.CreateRoom: _create,
    pp.UpdateRoom: _update,
    pp.AddMember: _add,
    pp.RemoveMember: _remove,
    pp.SetMemberRole: _role,
    pp.MuteRoom: _mute,
    pp.ListRooms: _list,
    pp.BrowseRooms: _browse,
    pp.OpenDirect: _direct,
    pp.Members: _members,
}


def handle(*, identity: Identity, command: pp.PeopleCommand) -> dict[str, Any]:
    """Carry out one people action for a socket; the frame that answers it. Raises ChatError
    (with the action and room named) before anything changed."""
    try:
        return _ACTIONS[type(command)](identity, command)
    except ChatError as error:
        error.action = error.action or pp.ACTIONS[type(command)]
        error.room_id = error.room_id or getattr(command, "room_id", None)
        raise
