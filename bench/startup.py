"""Start-up time of the command lines, beside ``certbot --help`` measured in the same run (issue 11).

Times ``ecert --help``, ``ecert-ca --help`` and ``ecert-ca ca list`` (on a demo instance made in a temporary
ECERT_DATA_DIR with ``ecert-ca init --demo``) and ``certbot --help``, each as the median of N fresh
processes, and prints each one's ratio to certbot. certbot is installed into a throwaway venv under /tmp
when it is not on PATH (the only network use of this script).

    .venv/bin/python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

BIN = Path(sys.executable).parent
CERTBOT_VENV = Path(tempfile.gettempdir()) / "ecert-bench-certbot-venv"
GOALS = {"ecert --help": 0.3, "ecert-ca --help": 0.3, "ecert-ca ca list": 0.8}


def certbot() -> Path:
    """certbot on PATH, or one installed once into a throwaway venv under /tmp."""
    found = shutil.which("certbot")
    if found:
        return Path(found)
    exe = CERTBOT_VENV / "bin" / "certbot"
    if not exe.exists():
        print(f"installing certbot into {CERTBOT_VENV} (once) ...", file=sys.stderr)
        venv.create(CERTBOT_VENV, with_pip=True)
        subprocess.run([str(CERTBOT_VENV / "bin" / "pip"), "install", "-q", "certbot"], check=True)
    return exe


class Failed(Exception):
    """A command under test did not exit 0: its time would mean nothing."""


def run_ok(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise Failed(f"{' '.join(Path(argv[0]).name.split())} {' '.join(argv[1:])} exited {done.returncode}: {last}")


def demo_data_dir(root: Path) -> dict[str, str]:
    """An environment whose ECERT_DATA_DIR holds an initialised demo instance (for ``ecert-ca ca list``)."""
    env = {**os.environ, "ECERT_DATA_DIR": str(root / "data"), "NO_COLOR": "1"}
    run_ok([str(BIN / "ecert-ca"), "init", "--demo"], env)
    return env


def median_seconds(argv: list[str], env: dict[str, str], runs: int) -> float:
    """The median wall-clock time of ``runs`` fresh processes (after one warm-up for the page cache)."""
    run_ok(argv, env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecert-startup-") as tmp:
        env = {**os.environ, "ECERT_DATA_DIR": str(Path(tmp) / "data"), "NO_COLOR": "1"}
        try:
            env = demo_data_dir(Path(tmp))
        except Failed as exc:
            print(f"note: no demo instance, so 'ecert-ca ca list' fails below: {exc}", file=sys.stderr)
        certbot_env = {**env, "HOME": tmp}  # certbot reads nothing of ours; keep its config out of $HOME
        baseline = median_seconds([str(certbot()), "--help"], certbot_env, args.runs)
        cases = {
            "ecert --help": [str(BIN / "ecert"), "--help"],
            "ecert-ca --help": [str(BIN / "ecert-ca"), "--help"],
            "ecert-ca ca list": [str(BIN / "ecert-ca"), "ca", "list"],
        }
        print(f"{'command':<20} {'median s':>9} {'vs certbot':>11} {'goal s':>7}")
        print(f"{'certbot --help':<20} {baseline:>9.3f} {1.0:>10.2f}x {'':>7}")
        for name, argv in cases.items():
            try:
                seconds = median_seconds(argv, env, args.runs)
            except Failed as exc:
                print(f"{name:<20} {'failed':>9} {'':>11} {GOALS[name]:>7.1f} ({exc})")
                continue
            mark = "ok" if seconds < GOALS[name] else "MISSED"
            print(f"{name:<20} {seconds:>9.3f} {seconds / baseline:>10.2f}x {GOALS[name]:>7.1f} {mark}")
        print(f"(median of {args.runs} fresh processes each, same run, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
