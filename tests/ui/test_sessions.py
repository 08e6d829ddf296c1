"""Dashboard sessions: lifetime, idle timeout, the cap, and the CSRF comparison."""

from __future__ import annotations

from interlock.ui.sessions import Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_found_by_its_id_only() -> None:
    sessions = Sessions()
    s = sessions.create("sk-il-token")
    assert sessions.get(s.id) is s
    assert sessions.get("not-" + s.id) is None
    assert sessions.get(None) is None
    assert s.id != s.csrf and len(s.id) >= 40


def test_idle_sessions_expire_and_use_keeps_them_alive() -> None:
    clock = Clock()
    sessions = Sessions(ttl_s=1000, idle_s=100, clock=clock)
    s = sessions.create("t")
    clock.now += 99
    assert sessions.get(s.id) is s  # restarts the idle timer
    clock.now += 99
    assert sessions.get(s.id) is s
    clock.now += 100
    assert sessions.get(s.id) is None
    assert len(sessions) == 0


def test_sessions_end_at_their_lifetime_however_busy() -> None:
    clock = Clock()
    sessions = Sessions(ttl_s=300, idle_s=100, clock=clock)
    s = sessions.create("t")
    for _ in range(5):
        clock.now += 50
        assert sessions.get(s.id) is s
    clock.now += 60  # 310 s after sign-in
    assert sessions.get(s.id) is None


def test_the_oldest_session_goes_when_full_and_drop_ends_one() -> None:
    sessions = Sessions(max_sessions=2)
    a, b = sessions.create("a"), sessions.create("b")
    c = sessions.create("c")
    assert sessions.get(a.id) is None and sessions.get(b.id) is b and sessions.get(c.id) is c
    sessions.drop(b.id)
    assert sessions.get(b.id) is None


def test_csrf_matches_only_its_own_token() -> None:
    s = Sessions().create("t")
    assert s.csrf_matches(s.csrf)
    assert not s.csrf_matches(None)
    assert not s.csrf_matches("")
    assert not s.csrf_matches(s.csrf[:-1])
    assert not s.csrf_matches(Sessions().create("t").csrf)
