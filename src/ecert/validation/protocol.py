"""The typed seam between the services and the network checks: what a domain validator must offer.

``ecert.validation.validator.Validator`` is the real one; tests and benchmarks hand in their own through
the same seam (``Context.validator``), as httpx takes a transport, instead of a string-keyed cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from ecert.core.dcv_rules import CaaDecision, DcvMethod, DomainResult

__all__ = ["DomainValidator"]


class DomainValidator(Protocol):
    """Checks domain control and CAA, and mails constructed-e-mail codes; never touches the database."""

    def check(
        self,
        method: DcvMethod | str,
        domain: str,
        code: str,
        *,
        email_address: str | None = None,
        entered_code: str | None = None,
    ) -> DomainResult: ...

    def check_caa(
        self,
        names: Sequence[str],
        *,
        is_wildcard_by_name: Mapping[str, bool] | None = None,
        now: datetime | None = None,
        method: DcvMethod | str | None = None,
        account_uri: str | None = None,
    ) -> list[CaaDecision]: ...

    def send_email_code(self, domain: str, local_part: str, code: str, reference: str) -> None: ...
