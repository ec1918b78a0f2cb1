"""Search never treats a control character as "match anything" (issue 10 point 8: ``q=%00`` listed every cert)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ecert.store import certificates as certs
from ecert.store import repo


@pytest.mark.parametrize("query", ["\x00", "%00", "www\x00", "\x00%", "\x01", "\n", "www.\x7f", "\t"])
@pytest.mark.parametrize("by", ["server_name", "serial", "reference"])
def test_a_control_character_matches_nothing(
    session_factory: Any, make_ca: Any, make_application: Any, now: Any, query: str, by: str
) -> None:
    with session_factory() as session, session.begin():
        ca = make_ca(session)
        for serial, cn in (("1", "www.example.hk"), ("2", "shop.example.hk")):
            app = make_application(session, f"B0000000{serial}", server_name=cn)
            record_id = certs.reserve_issuance(
                session,
                certs.Reservation(
                    ca_id=ca.id,
                    serial_hex=serial,
                    profile="ov",
                    application_id=app.id,
                    tbs_sha256="cd" * 32,
                    lint_findings=[],
                    evidence=None,
                    channel="test",
                    not_before=now,
                    not_after=now + timedelta(days=199),
                    subject_cn=cn,
                    names=(cn,),
                    spki_sha256="ab" * 32,
                ),
                now,
            )
            certs.store_signed_der(
                session, ca_id=ca.id, serial_hex=serial, record_id=record_id, der=b"0", accepted=True, now=now
            )
    with session_factory() as session:
        found = [c.serial_hex for c in repo.find_certificates(session, query, by)]  # type: ignore[arg-type]
    assert found == []  # "%00" is literal text, which no name holds


def test_the_public_api_answers_nul_with_an_empty_list(demo_ctx: Any) -> None:
    from fastapi.testclient import TestClient

    from ecert.web.app import create_app

    client = TestClient(create_app(demo_ctx.settings, {"ECERT_JOBS": "off"}, context=demo_ctx))
    for by in ("server_name", "serial", "reference"):
        answer = client.get("/api/v1/search", params={"by": by, "q": "\x00"})
        assert answer.status_code in (200, 400)
        if answer.status_code == 200:
            assert answer.json() == []
