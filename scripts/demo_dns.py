#!/usr/bin/env python3
"""A stand-in DNS resolver for the demo, on loopback only: enough DNS for a whole journey on one machine.

    python3 scripts/demo_dns.py serve [--port 5353] [--records FILE]   # what scripts/demo.sh starts
    python3 scripts/demo_dns.py add NAME VALUE [--records FILE]        # a TXT record (an `ecert --dns-hook`)
    python3 scripts/demo_dns.py del NAME [VALUE] [--records FILE]

Why: domain validation and CAA need a resolver, and a fresh machine has none that knows the demo's names.
This one answers like a recursive resolver (the RA flag set, as ecert requires of its resolvers) for every
name: A 127.0.0.1 (so the website method reaches `python3 -m http.server` on loopback), no AAAA and no CAA
records (so CAA permits issuance), and TXT records from a small file that `add`/`del` edit (so the DNS
method works too). It is a demo tool and nothing else: it never forwards a query, and it lies about every
name; never point a real instance at it. Needs only dnspython (an ecert dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import sys
import threading
from pathlib import Path

DEFAULT_RECORDS = Path(os.environ.get("ECERT_DATA_DIR", "data")) / "demo-dns.json"
TTL = 5


def _load(records: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(records.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k).lower().rstrip("."): [str(v) for v in vs] for k, vs in data.items()}


def _save(records: Path, data: dict[str, list[str]]) -> None:
    records.parent.mkdir(parents=True, exist_ok=True)
    tmp = records.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(records)


def answer(wire: bytes, records: Path) -> bytes:
    """The reply to one query: A 127.0.0.1 for any name, TXT from ``records``, nothing else."""
    import dns.flags  # here, so that `add` and `del` run under any python3 (a --dns-hook)
    import dns.message
    import dns.rdatatype
    import dns.rrset

    query = dns.message.from_wire(wire)
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.RA | dns.flags.AA
    for question in query.question:
        name = question.name.to_text().lower().rstrip(".")
        if question.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(question.name, TTL, "IN", "A", "127.0.0.1"))
        elif question.rdtype == dns.rdatatype.TXT:
            values = _load(records).get(name, [])
            if values:
                quoted = [json.dumps(v) for v in values]
                reply.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "TXT", quoted))
    return reply.to_wire()


class _Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        try:
            sock.sendto(answer(data, self.server.records), self.client_address)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a malformed query is dropped, the server goes on
            print(f"demo-dns: dropped a query: {exc}", file=sys.stderr)


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        size = int.from_bytes(self.rfile.read(2), "big")
        try:
            out = answer(self.rfile.read(size), self.server.records)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            print(f"demo-dns: dropped a query: {exc}", file=sys.stderr)
            return
        self.wfile.write(len(out).to_bytes(2, "big") + out)


def serve(port: int, records: Path) -> None:
    """UDP and TCP on 127.0.0.1:port until interrupted."""
    udp = socketserver.ThreadingUDPServer(("127.0.0.1", port), _Udp)
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Tcp, bind_and_activate=False)
    tcp.allow_reuse_address = True
    tcp.server_bind()
    tcp.server_activate()
    for server in (udp, tcp):
        server.records = records  # type: ignore[attr-defined]
        server.daemon_threads = True
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    print(f"demo-dns: answering on 127.0.0.1:{port} (udp+tcp), TXT records from {records}", flush=True)
    try:
        udp.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        udp.server_close()
        tcp.shutdown()
        tcp.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("serve", "add", "del"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("value", nargs="?")
    parser.add_argument("--port", type=int, default=5353)
    parser.add_argument("--records", type=Path, default=DEFAULT_RECORDS)
    args = parser.parse_args(argv)
    if args.command == "serve":
        socket.setdefaulttimeout(5)
        serve(args.port, args.records)
        return 0
    if not args.name or (args.command == "add" and args.value is None):
        parser.error(f"{args.command} needs NAME" + (" VALUE" if args.command == "add" else ""))
    name = args.name.lower().rstrip(".")
    data = _load(args.records)
    if args.command == "add":
        data.setdefault(name, [])
        if args.value not in data[name]:
            data[name].append(args.value)
    else:
        kept = [v for v in data.get(name, []) if args.value is not None and v != args.value]
        data[name] = kept
        if not kept:
            data.pop(name, None)
    _save(args.records, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
