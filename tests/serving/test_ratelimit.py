"""The per-client rate limit: how a limit is written, its sliding window, idle clients, the environment."""

from __future__ import annotations

import pytest

from medalpaca_core.serving.ratelimit import RateLimit, RateLimited, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("20/60", RateLimit(20, 60)),
        ("5/10s", RateLimit(5, 10)),
        ("30/min", RateLimit(30, 60)),
        ("100/h", RateLimit(100, 3600)),
        ("3 / 1.5 min", RateLimit(3, 90)),
        ("off", None),
        ("0", None),
    ],
)
def test_rate_limit_spellings(text, limit):
    assert RateLimit.parse(text) == limit


@pytest.mark.parametrize("text", ["lots", "20", "0/60", "5/0", "5/10 weeks"])
def test_unreadable_rate_limits_say_how_to_write_one(text):
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit.parse(text)


def test_rate_limiter_slides_its_window_per_client():
    clock = Clock()
    limiter = RateLimiter(RateLimit(3, 60), clock)
    for _ in range(3):
        limiter.admit("a")
        clock.now += 10
    with pytest.raises(RateLimited, match=r"at most 3 per 60 s from one client\. Try again in 30 s") as refused:
        limiter.admit("a")
    assert refused.value.retry_after_s == pytest.approx(30)
    limiter.admit("b")  # another client has its own allowance
    clock.now += 30  # the first request leaves the window; the refused one never counted
    limiter.admit("a")
    with pytest.raises(RateLimited):
        limiter.admit("a")


def test_rate_limiter_forgets_idle_clients(monkeypatch):
    monkeypatch.setattr("medalpaca_core.serving.ratelimit.MAX_TRACKED_CLIENTS", 10)
    clock = Clock()
    limiter = RateLimiter(RateLimit(1, 60), clock)
    for n in range(10):
        limiter.admit(f"old-{n}")
    clock.now += 61
    limiter.admit("new")
    assert len(limiter._starts) == 1


def test_rate_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MEDALPACA_RATE_LIMIT", "2/5s")
    assert RateLimiter.from_env().limit == RateLimit(2, 5)
    monkeypatch.setenv("MEDALPACA_RATE_LIMIT", "off")
    RateLimiter.from_env().admit("anyone")  # no limit at all
    monkeypatch.delenv("MEDALPACA_RATE_LIMIT")
    assert RateLimiter.from_env().limit == RateLimit(20, 60)
