"""The retry loop, driven by hand: it yields requests and sleeps, and receives answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from authkestra import ConfigError, NetworkError, RetryPolicy
from authkestra._protocol.actions import HttpRequest, HttpResponse, Sleep
from authkestra._protocol.retry import parse_retry_after, send_with_retries


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def request(deadline: float) -> HttpRequest:
    return HttpRequest("POST", "https://as.example/token", (), b"", deadline, 1024)


def run(
    policy: RetryPolicy, answers: list[object], clock: FakeClock | None = None
) -> tuple[list[object], object]:
    """Feed answers (HttpResponse or NetworkError) to the loop; return its actions and its result."""
    clock = clock or FakeClock()
    op = send_with_retries(request, policy, clock, rng=lambda: 1.0)
    actions: list[object] = []
    action = next(op)
    answers = list(answers)
    try:
        while True:
            actions.append(action)
            if isinstance(action, Sleep):
                clock.now += action.seconds
                action = op.send(None)
                continue
            answer = answers.pop(0)
            action = op.throw(answer) if isinstance(answer, BaseException) else op.send(answer)
    except StopIteration as stop:
        return actions, stop.value


def ok() -> HttpResponse:
    return HttpResponse(200, {}, b"{}")


def status(code: int, **headers: str) -> HttpResponse:
    return HttpResponse(code, headers, b"")


def test_success_first_time() -> None:
    actions, result = run(RetryPolicy(), [ok()])
    assert len(actions) == 1 and isinstance(result, HttpResponse) and result.status_code == 200


def test_network_errors_retried_with_exponential_backoff() -> None:
    actions, result = run(
        RetryPolicy(max_attempts=4, base_backoff=1, max_backoff=3), [NetworkError("x")] * 3 + [ok()]
    )
    sleeps = [a.seconds for a in actions if isinstance(a, Sleep)]
    assert sleeps == [1, 2, 3]  # doubling, capped (rng pinned to the top of the jitter range)
    assert isinstance(result, HttpResponse) and result.status_code == 200


def test_gives_up_after_max_attempts() -> None:
    with pytest.raises(NetworkError):
        run(RetryPolicy(max_attempts=2), [NetworkError("a"), NetworkError("b")])


def test_non_retryable_network_error_is_raised_at_once() -> None:
    with pytest.raises(NetworkError):
        run(RetryPolicy(max_attempts=5), [NetworkError("cert", retryable=False), ok()])


@pytest.mark.parametrize("code", [500, 502, 503, 504, 429])
def test_5xx_and_429_retried(code: int) -> None:
    actions, result = run(RetryPolicy(), [status(code), ok()])
    assert sum(isinstance(a, HttpRequest) for a in actions) == 2
    assert isinstance(result, HttpResponse) and result.status_code == 200


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409])
def test_other_4xx_never_retried(code: int) -> None:
    actions, result = run(RetryPolicy(), [status(code), ok()])
    assert len(actions) == 1 and isinstance(result, HttpResponse) and result.status_code == code


def test_last_failure_is_returned_for_the_caller_to_interpret() -> None:
    _, result = run(RetryPolicy(max_attempts=2), [status(503), status(502)])
    assert isinstance(result, HttpResponse) and result.status_code == 502


def test_retry_after_seconds_honoured() -> None:
    actions, _ = run(RetryPolicy(), [status(429, **{"retry-after": "4"}), ok()])
    assert [a.seconds for a in actions if isinstance(a, Sleep)] == [4.0]


def test_retry_after_beyond_cap_returns_at_once() -> None:
    actions, result = run(
        RetryPolicy(max_retry_after=10), [status(429, **{"retry-after": "3600"}), ok()]
    )
    assert len(actions) == 1 and isinstance(result, HttpResponse) and result.status_code == 429


def test_total_deadline_bounds_retries() -> None:
    policy = RetryPolicy(max_attempts=10, base_backoff=4, max_backoff=4, total_timeout=10)
    with pytest.raises(NetworkError):
        run(policy, [NetworkError("x")] * 10)
    actions, _ = run(policy, [status(503)] * 10)
    assert (
        sum(isinstance(a, HttpRequest) for a in actions) == 3
    )  # 0, 4, 8; 12 would pass the deadline


def test_requests_carry_the_deadline() -> None:
    clock = FakeClock()
    actions, _ = run(RetryPolicy(total_timeout=7), [ok()], clock)
    assert isinstance(actions[0], HttpRequest) and actions[0].deadline == 107.0


def test_policy_validation() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError):
        RetryPolicy(base_backoff=-1)


def test_parse_retry_after() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after(None) is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=now) == 30.0
    earlier = (now - timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(earlier, now=now) == 0.0
