"""P-256 signatures per second through softhsm2 (our PKCS#11 backend) against in-process cryptography.

Run: ``.venv/bin/python bench/hsm_sign.py [--seconds 2]``. It makes a throwaway token in a temp
directory with scripts/softhsm-init.sh, so it needs no setup and leaves nothing behind. Printed,
never asserted: the figure depends on the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ecert.signer.keys_pkcs11 import Pkcs11KeyBackend  # noqa: E402
from ecert.signer.keystore import KeySpec  # noqa: E402

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
USER_PIN = "user-pin-1234"
MESSAGE = b"a tbsCertificate of about the usual size " * 24  # ~1 KB


def rate(sign: Callable[[bytes], bytes], seconds: float) -> float:
    """Signatures per second, after a short warm-up."""
    for _ in range(20):
        sign(MESSAGE)
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            sign(MESSAGE)
        count += 50
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each side")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ecert-bench-hsm-") as directory:
        out = subprocess.run(
            ["sh", str(ROOT / "scripts" / "softhsm-init.sh"), directory],
            env={**os.environ, "ECERT_HSM_USER_PIN": USER_PIN},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        os.environ["SOFTHSM2_CONF"] = out.strip().splitlines()[-1].removeprefix("export SOFTHSM2_CONF=")

        backend = Pkcs11KeyBackend(MODULE, "ecert", USER_PIN)
        token_key = backend.load_key(backend.create_key("bench-p256", KeySpec.parse("ec-p256")))
        local_key = ec.generate_private_key(ec.SECP256R1())
        algorithm = ec.ECDSA(hashes.SHA256())
        assert isinstance(token_key, ec.EllipticCurvePrivateKey)

        token_rate = rate(lambda data: token_key.sign(data, algorithm), args.seconds)
        local_rate = rate(lambda data: local_key.sign(data, algorithm), args.seconds)
        backend.close()

    print(f"P-256 ECDSA-SHA256, {len(MESSAGE)}-byte message, {args.seconds:g} s each")
    print(f"  softhsm2 via PKCS#11 backend : {token_rate:10,.0f} signatures/s")
    print(f"  cryptography in process      : {local_rate:10,.0f} signatures/s  (baseline)")
    print(f"  ratio token / in-process     : {token_rate / local_rate:10.2f}")


if __name__ == "__main__":
    main()
