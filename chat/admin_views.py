"""The moderation pages of the admin site (chat.admin_site wires them up).

Thin, like every edge: a page shows what `chat.moderation` selects and turns each POST into
one call of a moderation service, which checks rights, writes, audits and broadcasts. One
page posts several forms; a hidden `op` field says which. Every POST ends in a redirect
(so a reload never repeats an action) with a message saying what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial, wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from accounts.users import is_moderator
from chat import moderation, protocol, services
from chat.moderation import MAX_SLOW_MODE_SECONDS, ModerationError
from chat.moderation_models import Ban, Mute, Report
from chat.storage.base import MessageRecord

View = Callable[..., HttpResponse]
T = TypeVar("T")


def moderator_only(view: View) -> View:
    """Staff reach the admin; only moderators reach these pages (403 otherwise)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_moderator(request.user):
            raise PermissionDenied("moderator rights are needed")
        return view(request, *args, **kwargs)

    return wrapped


def _reason_field() -> forms.CharField:
    return forms.CharField(
        max_length=moderation.MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why: it goes into the audit log.",
    )


def _slow_mode_field() -> forms.IntegerField:
    return forms.IntegerField(
        min_value=0, max_value=MAX_SLOW_MODE_SECONDS, initial=0, help_text="Seconds between posts per user; 0 is off."
    )


class RoomCreateForm(forms.Form):
    room_id = forms.SlugField(max_length=64, label="Room id")
    name = forms.CharField(max_length=100, required=False)
    private = forms.BooleanField(required=False, help_text="Members only")
    read_only = forms.BooleanField(required=False, help_text="Only moderators post")
    slow_mode_seconds = _slow_mode_field()
    reason = _reason_field()


class RoomSettingsForm(forms.Form):
    name = forms.CharField(max_length=100)
    private = forms.BooleanField(required=False, help_text="Members only")
    read_only = forms.BooleanField(required=False, help_text="Only moderators post")
    slow_mode_seconds = _slow_mode_field()
    reason = _reason_field()


class ReasonForm(forms.Form):
    reason = _reason_field()


class UserReasonForm(forms.Form):
    username = forms.CharField(max_length=150)
    reason = _reason_field()

    def clean_username(self) -> Any:
        user = get_user_model().objects.filter(username=self.cleaned_data["username"]).first()
        if user is None:
            raise forms.ValidationError("no such user")
        return user


class PurgeForm(UserReasonForm):
    everywhere = forms.BooleanField(required=False, label="In every room", help_text="Not only this room")


class RemoveMessagesForm(forms.Form):
    removal = forms.ChoiceField(choices=[("hide", "Hide"), ("delete", "Delete (erase the text)")])
    reason = _reason_field()

    def message_ids(self) -> list[str]:
        """The ticked messages (the service says whether each is a message of this room)."""
        ids = self.data.getlist("message_id") if hasattr(self.data, "getlist") else []
        return [i for i in ids if protocol.MESSAGE_ID_RE.match(i)]


class BanForm(UserReasonForm):
    days = forms.IntegerField(min_value=0, max_value=3650, initial=0, help_text="0: until lifted")


class MuteForm(UserReasonForm):
    room_id = forms.SlugField(max_length=64, required=False, help_text="Empty: every room")
    minutes = forms.IntegerField(min_value=1, max_value=525_600, initial=60)


class UnmuteForm(UserReasonForm):
    room_id = forms.SlugField(max_length=64, required=False, help_text="Empty: every room")


class ReportActionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[
            ("resolve", "Resolve (handled)"),
            ("dismiss", "Dismiss (nothing wrong)"),
            ("hide", "Hide the message, resolve"),
            ("delete", "Delete the message, resolve"),
            ("mute", "Mute the author everywhere, resolve"),
            ("ban", "Ban the author, resolve"),
        ]
    )
    mute_minutes = forms.IntegerField(min_value=1, max_value=525_600, initial=60, required=False)
    reason = _reason_field()


def _page(request: HttpRequest, template: str, title: str, **context: Any) -> HttpResponse:
    return render(request, template, {**admin.site.each_context(request), "title": title, **context})


def _attempt(request: HttpRequest, action: Callable[[], T], say: Callable[[T], str]) -> bool:
    """Run one moderation action; say what happened (or why not) on the next page."""
    try:
        result = action()
    except ModerationError as error:
        messages.error(request, " ".join(error.messages))
        return False
    messages.success(request, say(result))
    return True


def _form_errors(form: forms.Form) -> str:
    return "; ".join(f"{name}: {error}" for name, errors in form.errors.items() for error in errors)


def _back(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(request.get_full_path())


# --- rooms -----------------------------------------------------------------------------------


@moderator_only
def rooms(request: HttpRequest) -> HttpResponse:
    form = RoomCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        created = _attempt(
            request,
            lambda: moderation.room_create(
                moderator=request.user,
                room_id=data["room_id"],
                name=data["name"] or data["room_id"],
                private=data["private"],
                read_only=data["read_only"],
                slow_mode_seconds=data["slow_mode_seconds"],
                reason=data["reason"],
            ),
            lambda room: f"Created room {room.room_id}.",
        )
        if created:
            return HttpResponseRedirect(reverse("admin:chat_moderation_room", args=[data["room_id"]]))
        return _back(request)
    all_rooms = moderation.room_list_all(moderator=request.user)
    return _page(request, "admin/chat/moderation_rooms.html", "Rooms", rooms=all_rooms, form=form)


@moderator_only
def room(request: HttpRequest, room_id: str) -> HttpResponse:
    found = services.room_get(room_id)
    if found is None:
        raise Http404("No such room")
    user = request.user
    settings_form = RoomSettingsForm(
        initial={
            "name": found.name,
            "private": found.private,
            "read_only": found.read_only,
            "slow_mode_seconds": found.slow_mode_seconds,
        }
    )
    if request.method == "POST":
        op = request.POST.get("op")
        if op == "settings":
            settings_form = RoomSettingsForm(request.POST)
            if settings_form.is_valid():
                data = settings_form.cleaned_data
                _attempt(
                    request,
                    lambda: moderation.room_update(
                        moderator=user,
                        room_id=room_id,
                        name=data["name"],
                        private=data["private"],
                        read_only=data["read_only"],
                        slow_mode_seconds=data["slow_mode_seconds"],
                        reason=data["reason"],
                    ),
                    lambda room: "Settings saved.",
                )
                return _back(request)
            messages.error(request, _form_errors(settings_form))
        elif op in ("archive", "unarchive"):
            form = ReasonForm(request.POST)
            if form.is_valid():
                change = moderation.room_archive if op == "archive" else moderation.room_unarchive
                reason = form.cleaned_data["reason"]
                _attempt(
                    request, lambda: change(moderator=user, room_id=room_id, reason=reason), lambda r: f"Room {op}d."
                )
                return _back(request)
            messages.error(request, _form_errors(form))
        elif op in ("member_add", "member_remove"):
            member_form = UserReasonForm(request.POST)
            if member_form.is_valid():
                member, reason = member_form.cleaned_data["username"], member_form.cleaned_data["reason"]
                name = member.get_username()
                if op == "member_add":
                    _attempt(
                        request,
                        lambda: moderation.room_member_add(moderator=user, room_id=room_id, user=member, reason=reason),
                        lambda _: f"{name} is a member.",
                    )
                else:
                    _attempt(
                        request,
                        lambda: moderation.room_member_remove(
                            moderator=user, room_id=room_id, user=member, reason=reason
                        ),
                        lambda removed: f"{name} is no longer a member." if removed else f"{name} was not a member.",
                    )
                return _back(request)
            messages.error(request, _form_errors(member_form))
        elif op == "messages":
            remove_form = RemoveMessagesForm(request.POST)
            if remove_form.is_valid() and remove_form.message_ids():
                data = remove_form.cleaned_data
                remove = moderation.message_hide if data["removal"] == "hide" else moderation.message_delete
                done = "hidden" if data["removal"] == "hide" else "deleted"

                def remove_one(message_id: str) -> MessageRecord:
                    return remove(moderator=user, room_id=room_id, message_id=message_id, reason=data["reason"])

                for message_id in remove_form.message_ids():
                    _attempt(request, partial(remove_one, message_id), lambda m: f"Message #{m.seq} {done}.")
                return _back(request)
            messages.error(request, "Pick messages and an action, and give a reason.")
        elif op == "purge":
            purge_form = PurgeForm(request.POST)
            if purge_form.is_valid():
                data = purge_form.cleaned_data
                _attempt(
                    request,
                    lambda: moderation.user_messages_purge(
                        moderator=user,
                        user=data["username"],
                        room_id=None if data["everywhere"] else room_id,
                        reason=data["reason"],
                    ),
                    lambda removed: f"Deleted {len(removed)} messages of {data['username'].get_username()}.",
                )
                return _back(request)
            messages.error(request, _form_errors(purge_form))
        else:
            messages.error(request, "Unknown action.")
            return _back(request)

    text = request.GET.get("q", "").strip()
    author_name = request.GET.get("author", "").strip()
    author = get_user_model().objects.filter(username=author_name).first() if author_name else None
    if author_name and author is None:
        results = []
        messages.warning(request, f"No user called {author_name!r}.")
    else:
        results = moderation.message_search(moderator=user, room_id=room_id, text=text, author=author)
    return _page(
        request,
        "admin/chat/moderation_room.html",
        f"Room {found.name} (#{found.room_id})",
        room=found,
        settings_form=settings_form,
        members=moderation.room_members(moderator=user, room_id=room_id) if found.private else [],
        results=results,
        query=text,
        author=author_name,
        searched=bool(text or author_name),
        search_url=reverse("admin:chat_moderation_room", args=[room_id]) + "?" + urlencode({"q": text}),
    )


# --- users -----------------------------------------------------------------------------------


@moderator_only
def users(request: HttpRequest) -> HttpResponse:
    moderator = request.user
    forms_by_op: dict[str, type[UserReasonForm]] = {
        "ban": BanForm,
        "unban": UserReasonForm,
        "mute": MuteForm,
        "unmute": UnmuteForm,
    }
    if request.method == "POST":
        op = request.POST.get("op", "")
        form_class = forms_by_op.get(op)
        if form_class is None:
            messages.error(request, "Unknown action.")
            return _back(request)
        form = form_class(request.POST)
        if not form.is_valid():
            messages.error(request, _form_errors(form))
            return _back(request)
        data = form.cleaned_data
        target, reason = data["username"], data["reason"]
        name = target.get_username()
        if op == "ban":
            days = data["days"]
            _attempt(
                request,
                lambda: moderation.user_ban(
                    moderator=moderator, user=target, reason=reason, duration=timedelta(days=days) if days else None
                ),
                lambda ban: (
                    f"{name} is banned" + (f" until {ban.expires_at:%Y-%m-%d %H:%M} UTC." if ban.expires_at else ".")
                ),
            )
        elif op == "unban":
            _attempt(
                request,
                lambda: moderation.user_unban(moderator=moderator, user=target, reason=reason),
                lambda lifted: f"{name} is no longer banned." if lifted else f"{name} was not banned.",
            )
        elif op == "mute":
            _attempt(
                request,
                lambda: moderation.user_mute(
                    moderator=moderator,
                    user=target,
                    reason=reason,
                    duration=timedelta(minutes=data["minutes"]),
                    room_id=data["room_id"] or None,
                ),
                lambda mute: (
                    f"{name} is muted in {mute.room_id or 'every room'} until {mute.expires_at:%Y-%m-%d %H:%M} UTC."
                ),
            )
        else:
            _attempt(
                request,
                lambda: moderation.user_unmute(
                    moderator=moderator, user=target, reason=reason, room_id=data["room_id"] or None
                ),
                lambda lifted: f"Lifted {lifted} mutes of {name}.",
            )
        return HttpResponseRedirect(reverse("admin:chat_moderation_users") + "?" + urlencode({"username": name}))

    username = request.GET.get("username", "").strip()
    found = get_user_model().objects.filter(username=username).first() if username else None
    now = services.utcnow()
    return _page(
        request,
        "admin/chat/moderation_users.html",
        "Users: bans and mutes",
        username=username,
        found=found,
        found_bans=Ban.active(now).filter(user=found) if found else [],
        found_mutes=Mute.active(now).filter(user=found) if found else [],
        bans=Ban.active(now).select_related("user", "created_by")[:200],
        mutes=Mute.active(now).select_related("user", "created_by")[:200],
        ban_form=BanForm(initial={"username": username}),
        mute_form=MuteForm(initial={"username": username}),
    )


# --- reports ---------------------------------------------------------------------------------


@moderator_only
def report(request: HttpRequest, report_id: int) -> HttpResponse:
    found = Report.objects.select_related("reporter", "resolved_by").filter(pk=report_id).first()
    if found is None:
        raise Http404("No such report")
    form = ReportActionForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            action, reason = data["action"], data["reason"]
            if action in ("resolve", "dismiss"):
                done = _attempt(
                    request,
                    lambda: moderation.report_resolve(
                        moderator=request.user, report=found, reason=reason, dismiss=action == "dismiss"
                    ),
                    lambda _: f"Report {found.pk}: {action}d.",
                )
            else:
                minutes = data["mute_minutes"] or 60
                done = _attempt(
                    request,
                    lambda: moderation.report_act(
                        moderator=request.user,
                        report=found,
                        action=action,
                        reason=reason,
                        mute_for=timedelta(minutes=minutes),
                    ),
                    lambda _: f"Report {found.pk}: {action} done; the report is resolved.",
                )
            if done:
                return HttpResponseRedirect(reverse("admin:chat_report_changelist") + "?status__exact=open")
            return _back(request)
        messages.error(request, "Pick an action and give a reason.")
    current = moderation.message_get(moderator=request.user, room_id=found.room_id, message_id=found.message_id)
    others = Report.objects.filter(message_id=found.message_id).exclude(pk=found.pk).count()
    return _page(
        request,
        "admin/chat/moderation_report.html",
        f"Report {found.pk}",
        report=found,
        current=current,
        others=others,
        form=form,
    )
