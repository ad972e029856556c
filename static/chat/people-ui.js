/**
 * People and rooms in the template UI (docs/protocol.md "Rooms users make"): the sidebar's
 * two sections (rooms, direct messages) kept live, and the dialogs to make a room, open a
 * direct message, browse public rooms, and see and manage a room's members. The protocol
 * lives in ./core/people.js (shared with the React app); this file only renders.
 * Text reaches the DOM through textContent only.
 */
import {
  People,
  changesMembersOf,
  describeError,
  keepsLink,
  latestOnly,
  parseUsernames,
  roomIdForName,
  STALE,
  withPresence,
} from './core/people.js';

export function setupPeople({ connection, openRoom, currentRoomId, renameOpenRoom, listChanged = () => {} }) {
  const people = new People(connection);
  const byId = (id) => document.getElementById(id);
  const roomLinks = byId('room-links');
  const dmLinks = byId('dm-links');

  // --- the sidebar ----------------------------------------------------------------------

  function linkFor(roomId) {
    return document.querySelector(`#sidebar a[data-room-id="${CSS.escape(roomId)}"]`);
  }

  function makeLink(room) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = `/rooms/${encodeURIComponent(room.roomId)}/`;
    a.dataset.roomId = room.roomId;
    const name = document.createElement('span');
    name.className = 'room-link-name';
    name.dir = 'auto';
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.dataset.unread = '';
    badge.hidden = true;
    a.append(name, badge);
    li.append(a);
    return li;
  }

  function paint(a, room) {
    a.dataset.roomName = room.name;
    a.dataset.kind = room.kind;
    a.dataset.member = 'true';
    if (room.muted) a.dataset.muted = 'true';
    else delete a.dataset.muted;
    const name = a.querySelector('.room-link-name');
    if (name.textContent !== room.name) name.textContent = room.name;
  }

  /**
   * Issue 15's rule, the React app's too (core/people.js sidebarRooms): the user's rooms
   * first, most recently active first; then general and the open room when not a member.
   * Other public rooms are found through "Browse rooms".
   */
  function sync(list) {
    const member = new Set(list.map((room) => room.roomId));
    for (const a of [...document.querySelectorAll('#sidebar a[data-room-id]')]) {
      if (!member.has(a.dataset.roomId) && !keepsLink(a.dataset.roomId, currentRoomId(), a.dataset.kind)) {
        a.closest('li').remove();
      }
    }
    for (const section of [roomLinks, dmLinks]) {
      const wanted = list.filter((room) => (room.kind === 'direct') === (section === dmLinks));
      let before = section.firstElementChild;
      for (const room of wanted) {
        let a = linkFor(room.roomId);
        if (a && a.closest('ul') !== section) {
          a.closest('li').remove();
          a = null;
        }
        const li = a ? a.closest('li') : makeLink(room);
        a = li.querySelector('a');
        paint(a, room);
        if (li !== before) section.insertBefore(li, before);
        else before = before.nextElementSibling;
      }
    }
    if (currentRoomId()) {
      const open = list.find((room) => room.roomId === currentRoomId());
      if (open) renameOpenRoom(open.roomId, open.name);
    }
    listChanged();
  }

  people.onChange(sync);
  connection.on('frame', (frame) => {
    if (frame.type !== 'roomRemoved') return;
    const a = linkFor(frame.roomId);
    // A room left goes from the list but for the links keepsLink keeps (core/people.js).
    if (a && !keepsLink(frame.roomId, currentRoomId(), a.dataset.kind)) a.closest('li').remove();
    else if (a) delete a.dataset.member;
  });

  // --- dialogs --------------------------------------------------------------------------

  function wire(dialog) {
    for (const button of dialog.querySelectorAll('[data-close]')) {
      button.addEventListener('click', () => dialog.close('cancel'));
    }
  }

  function showError(element, error) {
    element.textContent = describeError(error);
    element.hidden = false;
  }

  // New room: by its name; the id it will get is shown as it is typed.
  const create = byId('create-room-dialog');
  wire(create);
  const createForm = byId('create-room-form');
  const createName = byId('new-room-name');
  const createId = byId('new-room-id');
  const createError = byId('create-room-error');
  createName.addEventListener('input', () => {
    const id = roomIdForName(createName.value);
    createId.textContent = id ? `Its address: #${id}-…` : '';
  });
  // The sidebar's "+ New room", and the room list page's own link to the same dialog.
  for (const button of document.querySelectorAll('#new-room-button, [data-new-room]')) {
    button.addEventListener('click', () => {
      createForm.reset();
      createId.textContent = '';
      createError.hidden = true;
      create.showModal();
    });
  }
  createForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    createError.hidden = true;
    try {
      const answer = await people.createRoom({
        name: createName.value,
        topic: byId('new-room-topic').value,
        isPrivate: byId('new-room-private').checked,
      });
      create.close('created');
      openRoom(answer.roomId, answer.room?.name ?? createName.value);
    } catch (error) {
      showError(createError, error);
    }
  });

  // New direct message: with one person, or a group.
  const direct = byId('direct-dialog');
  wire(direct);
  const directForm = byId('direct-form');
  const directError = byId('direct-error');
  byId('new-dm-button').addEventListener('click', () => {
    directForm.reset();
    directError.hidden = true;
    direct.showModal();
  });
  directForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    directError.hidden = true;
    const usernames = parseUsernames(byId('direct-usernames').value);
    if (usernames.length === 0) return;
    try {
      const answer = await people.openDirect(usernames);
      direct.close('opened');
      openRoom(answer.roomId, answer.room?.name ?? usernames.join(', '));
    } catch (error) {
      showError(directError, error);
    }
  });

  // Browse public rooms, and join one.
  const browse = byId('browse-dialog');
  wire(browse);
  const browseList = byId('browse-list');
  const browseQuery = byId('browse-query');
  const browseError = byId('browse-error');
  async function showBrowse() {
    browseError.hidden = true;
    try {
      const rooms = await people.browse(browseQuery.value.trim());
      browseList.replaceChildren(
        ...rooms.map((room) => {
          const li = document.createElement('li');
          const label = document.createElement('span');
          label.className = 'people-name';
          label.textContent = `${room.name} `;
          const id = document.createElement('span');
          id.className = 'muted';
          id.textContent = `#${room.roomId}${room.topic ? ` · ${room.topic}` : ''}`;
          label.append(id);
          const button = document.createElement('button');
          button.type = 'button';
          button.textContent = room.joined ? 'Open' : 'Join';
          button.addEventListener('click', async () => {
            try {
              if (!room.joined) await people.join(room.roomId);
              browse.close('joined');
              openRoom(room.roomId, room.name);
            } catch (error) {
              showError(browseError, error);
            }
          });
          li.append(label, button);
          return li;
        }),
      );
      if (rooms.length === 0) {
        const li = document.createElement('li');
        li.className = 'muted';
        li.textContent = 'No public rooms match.';
        browseList.append(li);
      }
    } catch (error) {
      showError(browseError, error);
    }
  }
  byId('browse-rooms-button').addEventListener('click', () => {
    browseQuery.value = '';
    browseList.replaceChildren();
    browse.showModal();
    showBrowse();
  });
  let browseTimer = null;
  browseQuery.addEventListener('input', () => {
    clearTimeout(browseTimer);
    browseTimer = setTimeout(showBrowse, 250);
  });

  // A room's members: invite, remove, hand ownership on, room settings, mute, leave.
  const members = byId('members-dialog');
  wire(members);
  const membersList = byId('members-list');
  const membersError = byId('members-error');
  const inviteForm = byId('invite-form');
  const settingsForm = byId('room-settings-form');
  const muteButton = byId('mute-room');
  const leaveButton = byId('leave-room');

  function mine(roomId) {
    return people.rooms.get(roomId) ?? null;
  }
  const readMembers = latestOnly((roomId) => people.members(roomId));

  function paintRoomLine(roomId, room) {
    byId('members-room').textContent = room
      ? `${room.name} · #${roomId} · ${room.kind}${room.topic ? ` · ${room.topic}` : ''}`
      : `#${roomId}`;
  }

  // The settings form starts from the room as the list has it, and follows it when it
  // changes (the roomChanged after a save, or another owner's); never over what is being
  // typed otherwise (a member invited reads the list again, not the form).
  let filled = null;
  function fillSettings(room) {
    const values = { name: room.name, topic: room.topic ?? '', private: room.kind === 'private' };
    if (filled && filled.name === values.name && filled.topic === values.topic && filled.private === values.private) return;
    filled = values;
    byId('room-settings-name').value = values.name;
    byId('room-settings-topic').value = values.topic;
    byId('room-settings-private').checked = values.private;
  }
  people.onChange(() => {
    const room = members.open ? mine(currentRoomId()) : null;
    if (!room) return;
    paintRoomLine(room.roomId, room);
    // The user's own role changed while the dialog is open (made owner, or no longer one):
    // the owners' forms and the members' buttons follow at once, as React's dialog does.
    if (inviteForm.hidden === (room.role === 'owner' && room.kind !== 'direct')) {
      showMembers();
      return;
    }
    if (!settingsForm.hidden) fillSettings(room);
  });

  async function showMembers() {
    const roomId = currentRoomId();
    if (!roomId) return;
    membersError.hidden = true;
    const room = mine(roomId);
    const owner = room?.role === 'owner';
    const direct = room?.kind === 'direct';
    paintRoomLine(roomId, room);
    inviteForm.hidden = !owner || direct;
    settingsForm.hidden = !owner || direct;
    if (owner && !direct) fillSettings(room);
    muteButton.hidden = !room;
    muteButton.textContent = room?.muted ? 'Unmute room' : 'Mute room';
    leaveButton.textContent = room ? 'Leave room' : 'Join room';
    leaveButton.hidden = !room && direct;
    try {
      const list = await readMembers(roomId);
      if (list === STALE) return;
      shown = list;
      membersList.replaceChildren(...list.map((member) => memberLine(roomId, member, owner && !direct)));
    } catch (error) {
      membersList.replaceChildren();
      showError(membersError, error);
    }
  }

  function memberLine(roomId, member, manage) {
    const li = document.createElement('li');
    li.dataset.userId = member.userId;
    const name = document.createElement('span');
    name.className = 'people-name';
    name.textContent = member.username;
    const detail = document.createElement('span');
    detail.className = 'muted';
    detail.textContent = ` ${member.role === 'owner' ? 'owner · ' : ''}${member.status ?? 'offline'}`;
    detail.dataset.status = member.status ?? 'offline';
    name.append(detail);
    li.append(name);
    if (manage && String(member.userId) !== String(connection.user?.userId ?? document.getElementById('chat-app')?.dataset.userId)) {
      const role = document.createElement('button');
      role.type = 'button';
      role.textContent = member.role === 'owner' ? 'Make member' : 'Make owner';
      role.addEventListener('click', () =>
        act(() => people.setRole(roomId, member.username, member.role === 'owner' ? 'member' : 'owner')),
      );
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove ${member.username}`);
      remove.addEventListener('click', () => act(() => people.remove(roomId, member.username)));
      li.append(role, remove);
    }
    return li;
  }

  async function act(fn) {
    membersError.hidden = true;
    try {
      await fn();
      await showMembers();
    } catch (error) {
      showError(membersError, error);
    }
  }

  // The open list follows the room live: a member added, taken out (by an owner, or a
  // moderator from the admin) or re-roled reads it again; a presence frame repaints a status.
  let shown = [];
  people.onMembers((frame) => {
    if (!members.open) return;
    if (frame.type === 'presence') {
      const after = withPresence(shown, frame);
      if (after === shown) return;
      shown = after;
      const li = membersList.querySelector(`li[data-user-id="${CSS.escape(String(frame.userId))}"]`);
      const member = shown.find((m) => String(m.userId) === String(frame.userId));
      const detail = li?.querySelector('.people-name .muted');
      if (detail && member) {
        detail.textContent = ` ${member.role === 'owner' ? 'owner · ' : ''}${member.status ?? 'offline'}`;
        detail.dataset.status = member.status ?? 'offline';
      }
    } else if (changesMembersOf(frame, currentRoomId())) {
      showMembers();
    }
  });

  byId('members-button').addEventListener('click', () => {
    membersList.replaceChildren();
    filled = null;
    members.showModal();
    showMembers();
  });
  inviteForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = byId('invite-username');
    const username = input.value.trim().replace(/^@/, '');
    if (!username) return;
    // Emptied at once, so the next name can be typed while this invitation is on its way;
    // given back when the invitation fails and nothing new has been typed.
    input.value = '';
    act(async () => {
      try {
        await people.invite(currentRoomId(), username);
      } catch (error) {
        if (!input.value) input.value = username;
        throw error;
      }
    });
  });
  settingsForm.addEventListener('submit', (event) => {
    event.preventDefault();
    act(() =>
      people.updateRoom(currentRoomId(), {
        name: byId('room-settings-name').value,
        topic: byId('room-settings-topic').value,
        private: byId('room-settings-private').checked,
      }),
    );
  });
  muteButton.addEventListener('click', () => {
    const room = mine(currentRoomId());
    if (room) act(() => people.mute(room.roomId, !room.muted));
  });
  leaveButton.addEventListener('click', async () => {
    const roomId = currentRoomId();
    if (mine(roomId)) {
      try {
        await people.leave(roomId);
        members.close('left');
      } catch (error) {
        showError(membersError, error);
      }
    } else {
      act(() => people.join(roomId));
    }
  });

  return people;
}
