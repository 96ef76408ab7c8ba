"""``make demo`` runs the main job end to end; it must keep working."""

from __future__ import annotations

import io

from authkestra.cli import Environment, main


def test_demo_runs_end_to_end() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo"], Environment(environ={}, stdout=out, stderr=err)) == 0
    text = out.getvalue()
    assert "GET /reports with the token -> 200" in text
    assert "(scope admin added) -> 401" in text and "signature is not valid" in text
    assert "reports:write only -> 403" in text and "insufficient_scope" in text
    assert "POST /admin/clients as demo-operator (scope authkestra:admin) -> 201" in text
    assert "demo-nightly-export gets a token at once" in text
    assert "GET /metrics -> 200" in text
    assert (
        'authkestra_token_requests_total{client_id="demo-nightly-export",outcome="issued"}' in text
    )
    assert "Demo complete." in text
