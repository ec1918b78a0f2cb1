"""The one typed configuration of ecert, built once at start-up and passed down.

No other module reads the environment: ``main()`` and ``create_app()`` call
:func:`load_settings` and hand the frozen object to whatever needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Lists come from the environment as comma-separated text ("127.0.0.1:53,[::1]:53"), not JSON.
TextList = Annotated[tuple[str, ...], NoDecode]

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything an ecert-ca process may be configured with (env prefix ``ECERT_``)."""

    model_config = SettingsConfigDict(env_prefix="ECERT_", frozen=True, extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None  # default: SQLite file under data_dir
    # What AIA, CRLDP and portal links are built from. It must name a public domain (BR 7.1.2.11.2: no
    # internal names in certificates); the demo's is a placeholder, served locally under the same paths.
    base_url: str = "http://pki.ecert-demo.hk"
    hierarchy_config: Path | None = None  # TOML naming the CAs; the demo config when absent

    # CA keys
    key_backend: Literal["file", "pkcs11"] = "file"
    key_passphrase_env: str = "ECERT_KEY_PASSPHRASE"  # name of the variable holding it, not the value
    key_passphrase_file: Path | None = None
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_token_label: str = "ecert"
    pkcs11_pin_env: str = "ECERT_PKCS11_PIN"

    # Issuance policy
    ca_policy_oid: str = "1.3.6.1.4.1.99999.1.1"  # the CA's own CPS OID (demo arc)
    caa_identities: TextList = ("ecert.example.hk",)
    ocsp_enabled: bool = False
    lint_before_signing: bool = True

    # Domain validation network
    dns_resolvers: TextList = ("127.0.0.1:53",)  # host:port, a validating resolver in production
    dnssec_required: bool = False
    allow_private_addresses: bool = False  # tests turn this on to reach loopback servers
    http_port: int = 80  # ports DCV fetches on; tests move them to loopback ports
    https_port: int = 443
    perspective_urls: TextList = ()
    perspective_secret_env: str = "ECERT_PERSPECTIVE_SECRET"

    # Certificate Transparency (RFC 6962): off in the demo, where no public log is reachable
    ct_enabled: bool = False
    ct_log_list: Path | None = None  # Chrome's log_list.json v3 format
    ct_timeout_seconds: float = Field(default=10.0, gt=0)  # per log and attempt
    ct_attempts: int = Field(default=3, ge=1, le=10)

    # Mail
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_port_for_dcv: int = 25
    mail_from: str = "ca@ecert.example.hk"
    # Expiry notices name this ACME directory as a way to renew; unset until ACME is served.
    notice_acme_directory: str | None = None

    # ACME: nonces (and later rate-limit counters) in Redis when set, else in the database
    redis_url: str | None = None
    redis_namespace: str = "ecert:"  # key prefix in Redis, so several CAs (or test runs) can share one server
    acme_eab_secret_env: str = "ECERT_ACME_EAB_SECRET"  # names the variable holding the EAB key-wrapping secret
    # Subscribers may make their own EAB credential in the portal (issue 13 point 2); false: the operator only
    acme_portal_eab: bool = True
    # ACME rate limits (issue 13 point 8): at most N per window for one key; 0 turns a limit off
    acme_new_accounts_per_ip: int = Field(default=10, ge=0)
    acme_new_accounts_window_seconds: int = Field(default=3 * 3600, gt=0)
    acme_new_orders_per_account: int = Field(default=300, ge=0)
    acme_new_orders_window_seconds: int = Field(default=3 * 3600, gt=0)
    acme_failed_validations_per_name: int = Field(default=5, ge=0)
    acme_failed_validations_window_seconds: int = Field(default=3600, gt=0)
    acme_certificates_per_application_week: int = Field(default=50, ge=0)

    # Web
    session_secret_env: str = "ECERT_SESSION_SECRET"
    # Threads per web worker process for the blocking parts of requests (database, signing, lint). Fewer than
    # anyio's default 40: past a few, threads only fight over the GIL, and under load the CPU per request rose
    # by half (bench/acme.py, bench/portal.py).
    web_threads: int = Field(default=8, ge=1, le=200)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=30, ge=1)

    @field_validator("caa_identities", "dns_resolvers", "perspective_urls", mode="before")
    @classmethod
    def _split_text_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ecert.db').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and overrides, for tests) once and freeze the result."""
    return Settings(**overrides)  # type: ignore[arg-type]
