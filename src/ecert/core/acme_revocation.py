"""Which revocation reasons an ACME revokeCert request may carry (RFC 8555 7.6, BR 7.2.2).

Pure: maps the request's CRLReason code to the reason name services/revocation.py takes, or refuses
with ``badRevocationReason``.
"""

from __future__ import annotations

from .acme_rules import AcmeRefusal, ProblemType

__all__ = ["SUBSCRIBER_REASONS", "revocation_reason"]

# BR 7.2.2: the reasonCodes a subscriber may ask for. 0 ("unspecified") means no reasonCode at all;
# privilegeWithdrawn (9) is the CA's own finding, and certificateHold (6), removeFromCRL (8),
# cACompromise (2) and aACompromise (10) never appear on a subscriber certificate's entry.
SUBSCRIBER_REASONS: dict[int, str | None] = {
    0: None,
    1: "keyCompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
}


def revocation_reason(code: object) -> str | None:
    """The reason name for ``code`` (absent = unspecified), or badRevocationReason (RFC 8555 7.6, BR 7.2.2)."""
    if code is None:
        return None
    if isinstance(code, bool) or not isinstance(code, int) or code not in SUBSCRIBER_REASONS:
        raise AcmeRefusal(
            ProblemType.BAD_REVOCATION_REASON,
            f"revocation reason {code!r} is not allowed; use one of {sorted(SUBSCRIBER_REASONS)} (BR 7.2.2)",
            rule="BR 7.2.2",
            value=code,
        )
    return SUBSCRIBER_REASONS[code]
