"""Which destination addresses DCV may connect to: public unicast only, unless tests allow loopback."""

from __future__ import annotations

import ipaddress

from ecert.core.errors import ValidationFailed

__all__ = ["is_forbidden_address", "ensure_allowed_address"]


def is_forbidden_address(address: str) -> bool:
    """True for private, loopback, link-local, multicast, reserved and unspecified addresses.

    A CA must not let a subscriber point its fetcher at internal services (SSRF); BR 3.2.2.4.18 wants
    the file from the domain's public web server, so only globally routable addresses qualify.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def ensure_allowed_address(address: str, *, allow_private: bool) -> None:
    """Raise ValidationFailed if DCV may not connect to this address under the configuration."""
    if not allow_private and is_forbidden_address(address):
        raise ValidationFailed(
            f"refusing to connect to non-public address {address}", rule="BR 3.2.2.4.18", value=address
        )
