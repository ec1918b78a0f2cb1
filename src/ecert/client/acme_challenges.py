"""Answering ACME challenges: http-01 through a web root or a small listener of our own, dns-01 through a hook.

The proofs are computed by certbot's ``acme.challenges`` (key authorisations, the TXT digest); this module
only puts them where the CA looks and takes them away again, whatever happened in between.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from acme import challenges, messages, standalone
from josepy.jwk import JWK

from ecert.client.errors import ClientError
from ecert.client.store import FILE_MODE, atomic_write

__all__ = ["ChallengeOptions", "published"]

HOOK_TIMEOUT = 120


@dataclass(frozen=True)
class ChallengeOptions:
    """How this host proves control: one of a web root, a listener port, or a DNS hook (wildcards need the hook).

    ``dns_hook`` is run as ``HOOK add _acme-challenge.NAME VALUE`` before and ``HOOK del ...`` after, as
    ``ecert request submit`` runs it for the portal's DNS method; ``dns_wait`` gives slow DNS time to spread.
    """

    webroot: Path | None = None
    http_port: int | None = None
    http_address: str = ""
    dns_hook: Path | None = None
    dns_wait: float = 0.0

    def require_some(self) -> None:
        if self.webroot is None and self.http_port is None and self.dns_hook is None:
            raise ClientError(
                "say how to prove control of the names: --webroot DIR, --http-01-port N or --dns-hook CMD"
            )


@dataclass(frozen=True)
class _Task:
    challb: messages.ChallengeBody
    response: challenges.ChallengeResponse
    domain: str
    proof: str


def _choose(authzr: messages.AuthorizationResource, opts: ChallengeOptions) -> messages.ChallengeBody:
    """dns-01 when a hook is given or the name is a wildcard (RFC 8555 7.1.3), else http-01."""
    wildcard = bool(authzr.body.wildcard)
    want: type[challenges.Challenge] = challenges.DNS01 if (opts.dns_hook or wildcard) else challenges.HTTP01
    if want is challenges.DNS01 and opts.dns_hook is None:
        raise ClientError(f"*.{authzr.body.identifier.value} can only be proved by dns-01: give --dns-hook")
    if want is challenges.HTTP01 and opts.webroot is None and opts.http_port is None:
        raise ClientError("give --webroot DIR or --http-01-port N for http-01, or --dns-hook for dns-01")
    for challb in authzr.body.challenges:
        if isinstance(challb.chall, want):
            return challb
    offered = ", ".join(str(c.chall.typ) for c in authzr.body.challenges)
    raise ClientError(f"the ACME server offers {offered} for {authzr.body.identifier.value}, not {want.typ}")


def _tasks(authzrs: list[messages.AuthorizationResource], key: JWK, opts: ChallengeOptions) -> list[_Task]:
    out = []
    for authzr in authzrs:
        if authzr.body.status == messages.STATUS_VALID:
            continue  # an earlier validation the CA still reuses
        challb = _choose(authzr, opts)
        response, proof = challb.chall.response_and_validation(key)
        out.append(_Task(challb, response, str(authzr.body.identifier.value), str(proof)))
    return out


@contextlib.contextmanager
def published(
    client_key: JWK, authzrs: list[messages.AuthorizationResource], opts: ChallengeOptions
) -> Iterator[list[tuple[messages.ChallengeBody, challenges.ChallengeResponse]]]:
    """Publish every proof, yield the (challenge, response) pairs to answer, and always clean up after."""
    tasks = _tasks(authzrs, client_key, opts)
    with contextlib.ExitStack() as stack:
        http = [t for t in tasks if isinstance(t.challb.chall, challenges.HTTP01)]
        dns = [t for t in tasks if isinstance(t.challb.chall, challenges.DNS01)]
        if http and opts.webroot is not None:
            stack.enter_context(_webroot(opts.webroot, http))
        elif http:
            stack.enter_context(_listener(opts.http_address, int(opts.http_port or 80), http))
        if dns:
            stack.enter_context(_dns_records(opts, dns))
            if opts.dns_wait > 0:
                time.sleep(opts.dns_wait)
        yield [(t.challb, t.response) for t in tasks]


@contextlib.contextmanager
def _webroot(root: Path, tasks: list[_Task]) -> Iterator[None]:
    """``ROOT/.well-known/acme-challenge/TOKEN`` holding the key authorisation (RFC 8555 8.3), removed after."""
    folder = root / ".well-known" / "acme-challenge"
    try:
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise ClientError(f"cannot write the web root {root}: {exc.strerror or exc}", value=str(root)) from exc
    paths = []
    try:
        for t in tasks:
            path = folder / t.challb.chall.encode("token")
            atomic_write(path, t.proof.encode(), mode=FILE_MODE, force=True)
            paths.append(path)
        yield
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _listener(address: str, port: int, tasks: list[_Task]) -> Iterator[None]:
    """A small HTTP server of certbot's ``acme.standalone`` that serves only the proofs, stopped after."""
    resources = {
        standalone.HTTP01RequestHandler.HTTP01Resource(chall=t.challb.chall, response=t.response, validation=t.proof)
        for t in tasks
    }
    try:
        server = standalone.HTTP01Server((address, port), resources)
    except OSError as exc:
        where = f"{address or '*'}:{port}"
        raise ClientError(f"cannot listen on {where} for http-01: {exc.strerror or exc}", value=where) from exc
    thread = threading.Thread(target=server.serve_forever, name="ecert-http-01", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def _dns_records(opts: ChallengeOptions, tasks: list[_Task]) -> Iterator[None]:
    hook = opts.dns_hook
    assert hook is not None
    added: list[_Task] = []
    try:
        for t in tasks:
            _run_hook(hook, "add", t)
            added.append(t)
        yield
    finally:
        for t in added:
            with contextlib.suppress(ClientError):  # a failed clean-up must not hide the renewal's outcome
                _run_hook(hook, "del", t)


def _run_hook(hook: Path, verb: str, task: _Task) -> None:
    """``HOOK add|del _acme-challenge.NAME VALUE``; a non-zero exit is a refusal with the hook's last words."""
    name = task.challb.chall.validation_domain_name(task.domain)
    try:
        result = subprocess.run(  # noqa: S603 - argv, no shell
            [str(hook), verb, name, task.proof], capture_output=True, timeout=HOOK_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClientError(f"the DNS hook {hook} could not run: {exc}", value=str(hook)) from exc
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-200:]
        raise ClientError(f"the DNS hook failed ({verb} {name}): {tail}", value=str(hook))
