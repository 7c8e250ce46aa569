"""A hand-moved stand-in for time.monotonic, for the caches that expire by it."""

from __future__ import annotations


class Clock:
    """Replaces `module.time.monotonic`; move it with `clock.now += seconds`."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def fake_monotonic(monkeypatch, module) -> Clock:
    clock = Clock()
    monkeypatch.setattr(module.time, "monotonic", clock)
    return clock
