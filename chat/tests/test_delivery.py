"""The delivery core (chat.delivery): plain asserts, no event loop, no layer, no database."""

from __future__ import annotations

from chat.delivery import Repair, Resync, RoomSequencer, Rule, SocketDelivery, Step, rule


def test_the_cursor_rule_is_duplicate_next_or_gap() -> None:
    """seq <= cursor is a duplicate, cursor + 1 the next event, anything past it a gap."""
    assert rule(5, 4) is Rule.DUPLICATE
    assert rule(5, 5) is Rule.DUPLICATE
    assert rule(5, 6) is Rule.NEXT
    assert rule(5, 7) is Rule.GAP


# One socket ---------------------------------------------------------------------------


def test_a_socket_sends_the_next_seq_and_skips_what_it_has() -> None:
    """Each seq goes out once, in order; older seqs (a retry's re-broadcast) are skipped."""
    core = SocketDelivery()
    core.join("r", 3)
    assert core.receive("r", 4) is Step.SEND
    assert core.cursors["r"] == 4
    assert core.receive("r", 4) is Step.SKIP
    assert core.receive("r", 1) is Step.SKIP
    assert core.cursors["r"] == 4


def test_a_socket_skips_rooms_it_has_not_joined_or_has_left() -> None:
    """Events of other rooms are never sent; leaving forgets the cursor."""
    core = SocketDelivery()
    assert core.receive("r", 1) is Step.SKIP
    core.join("r", 0)
    assert core.leave("r") is True
    assert core.leave("r") is False
    assert core.receive("r", 1) is Step.SKIP


def test_a_gap_asks_for_a_repair_of_exactly_the_missing_seqs() -> None:
    """seq 9 after cursor 5: read (5, 8], then the event itself is the next one."""
    core = SocketDelivery()
    core.join("r", 5)
    decision = core.receive("r", 9)
    assert decision == Repair("r", 5, 8)
    assert isinstance(decision, Repair) and decision.missing == 3
    assert core.cursors["r"] == 5  # not moved until the repair is done
    for seq in (6, 7, 8):
        assert core.decide("r", seq) is Step.SEND
    core.repaired("r", 8)
    assert core.decide("r", 9) is Step.SEND


def test_a_repair_that_finds_less_than_asked_still_moves_on() -> None:
    """Expired messages are gone: after the repair the event is sent, not repaired again."""
    core = SocketDelivery()
    core.join("r", 5)
    assert core.receive("r", 9) == Repair("r", 5, 8)
    core.repaired("r", 8)  # the store had none of 6-8
    assert core.decide("r", 9) is Step.SEND


def test_a_gap_past_the_cap_is_a_resync_not_a_read() -> None:
    """A gap wider than the cap is never read: the socket resyncs (recovered: false)."""
    core = SocketDelivery(gap_cap=10)
    core.join("r", 5)
    assert core.receive("r", 16) == Repair("r", 5, 15)
    assert core.receive("r", 17) == Resync("r", 5, 16)
    assert core.cursors["r"] == 5


def test_events_wait_in_order_while_a_join_or_catch_up_runs() -> None:
    """While held, events are deferred; released in arrival order and decided by the rule."""
    core = SocketDelivery()
    core.join("r", 0)
    core.hold()
    assert core.receive("r", 1, "one") is Step.DEFER
    assert core.receive("r", 2, "two") is Step.DEFER
    assert core.receive("new", 5, "x") is Step.DEFER  # kept: the join that holds may be joining it
    core.join("r", 1)  # the join read seq 1 already
    core.join("new", 4)
    decided = []
    while (deferred := core.next_deferred()) is not None:
        room_id, seq, item = deferred
        decided.append((item, core.decide(room_id, seq)))
    core.release()
    assert decided == [("one", Step.SKIP), ("two", Step.SEND), ("x", Step.SEND)]
    assert core.receive("r", 3) is Step.SEND


def test_a_catch_up_repairs_up_to_the_stores_seq_or_resyncs() -> None:
    """The tail check: nothing when up to date, a repair when behind, a resync past the cap."""
    core = SocketDelivery(gap_cap=100)
    core.join("r", 10)
    assert core.behind("r", 10) is Step.SKIP
    assert core.behind("r", None) is Step.SKIP
    assert core.behind("r", 12) == Repair("r", 10, 12)
    assert core.behind("r", 111) == Resync("r", 10, 111)


def test_no_rule_depends_on_the_events_type() -> None:
    """The core sees only room and seq: any kind of room event follows the same rule."""
    core = SocketDelivery()
    core.join("r", 0)
    kinds = ["message", "messageRemoved", "messageEdited", "reactions", "memberAdded", "roomUpdated"]
    assert [core.receive("r", seq, kind) for seq, kind in enumerate(kinds, start=1)] == [Step.SEND] * len(kinds)


# One process's rooms ---------------------------------------------------------------------


def test_a_fresh_subscription_measures_gaps_from_its_baseline_not_an_old_retry() -> None:
    """Issue 24.3: a retry's old seq arriving first cannot become the baseline of a 50,000-seq gap."""
    seq = RoomSequencer(window=0.2, gap_cap=500)
    seq.subscribe("r")
    seq.baseline("r", 50_000)
    assert seq.receive("r", 3, "retry", now=0.0) == []
    assert seq.receive("r", 50_001, "next", now=0.0) == ["next"]
    assert seq.expired(now=10.0) == []
    assert seq.lost == 0


def test_before_the_baseline_events_pass_and_the_baseline_never_goes_back() -> None:
    """Events before the baseline is read go to the (joining) sockets; the cursor takes the higher."""
    seq = RoomSequencer()
    seq.subscribe("r")
    assert seq.receive("r", 8, "eight", now=0.0) == ["eight"]
    seq.baseline("r", 7)
    assert seq.cursor("r") == 8
    seq.baseline("r", 20)  # only the first baseline counts
    assert seq.cursor("r") == 8


def test_reordering_within_the_window_reads_nothing_and_loses_nothing() -> None:
    """Issue 24.4: two publishers' events interleaved out of order come out in order, no repair, no loss."""
    seq = RoomSequencer(window=0.2)
    seq.subscribe("r")
    seq.baseline("r", 0)
    out: list[str] = []
    clock = 0.0
    # publisher A has the odd seqs, B the even ones; each pair arrives swapped
    for first in range(1, 41, 2):
        out += seq.receive("r", first + 1, f"m{first + 1}", now=clock)
        clock += 0.05
        assert seq.expired(now=clock) == []
        out += seq.receive("r", first, f"m{first}", now=clock)
    assert out == [f"m{n}" for n in range(1, 41)]
    assert seq.reordered == 20
    assert seq.lost == 0
    assert seq.deadline() is None


def test_a_gap_past_the_window_is_one_repair_then_the_held_events() -> None:
    """A seq that never comes is a loss: one repair for the process, then what was held, in order."""
    seq = RoomSequencer(window=0.2)
    seq.subscribe("r")
    seq.baseline("r", 4)
    assert seq.receive("r", 7, "seven", now=1.0) == []
    assert seq.receive("r", 8, "eight", now=1.1) == []
    assert seq.deadline() == 1.2
    assert seq.expired(now=1.19) == []
    assert seq.expired(now=1.2) == [Repair("r", 4, 6)]
    assert seq.expired(now=5.0) == []  # one repair at a time
    assert seq.lost == 2
    assert seq.repaired("r", 6) == ["seven", "eight"]
    assert seq.cursor("r") == 8
    assert seq.receive("r", 5, "late", now=2.0) == []  # arrived after the repair: a duplicate


def test_a_gap_past_the_cap_is_let_go_without_a_read() -> None:
    """Past the cap the process reads nothing; the held events go on and the sockets resync."""
    seq = RoomSequencer(window=0.1, gap_cap=100)
    seq.subscribe("r")
    seq.baseline("r", 0)
    seq.receive("r", 1000, "far", now=0.0)
    assert seq.expired(now=1.0) == [Resync("r", 0, 999)]
    assert seq.repaired("r", 999) == ["far"]


def test_an_unsubscribed_room_is_ignored_and_forgotten() -> None:
    """Events of rooms the process left are dropped, and a new subscription starts afresh."""
    seq = RoomSequencer()
    assert seq.receive("r", 1, "x", now=0.0) == []
    seq.subscribe("r")
    seq.baseline("r", 3)
    seq.unsubscribe("r")
    assert not seq.subscribed("r")
    seq.subscribe("r")
    assert seq.cursor("r") is None
