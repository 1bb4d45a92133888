"""Open a run's report.html in a headless Chromium and save a screenshot, to check how the page looks.

    python scripts/report_screenshot.py runs/quickstart-20261201-120000 --out shot.png
    python scripts/report_screenshot.py compare/compare.html --out compare.png

Needs Chromium (Debian: apt-get install chromium); set CHROMIUM=/path/to/browser to use another one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path, help="a run directory (its report.html is shown) or an .html file")
    parser.add_argument("--out", type=Path, default=Path("shot.png"), help="the PNG to write (default shot.png)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args()
    page = args.target / "report.html" if args.target.is_dir() else args.target
    if not page.is_file():
        print(f"error: {page} does not exist\n  -> give a run directory holding report.html "
              "(`distill report RUN_DIR` writes it)", file=sys.stderr)
        return 2
    browser = find_browser()
    if browser is None:
        print(f"error: no Chromium found (looked for {', '.join(BROWSERS)} on PATH, and $CHROMIUM)\n"
              "  -> install it (Debian/Ubuntu: apt-get install chromium) or set CHROMIUM=/path/to/chrome",
              file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
           f"--screenshot={out}", f"--window-size={args.width},{args.height}", page.resolve().as_uri()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        print(f"error: {browser} did not finish within 120 s", file=sys.stderr)
        return 1
    if not out.is_file():
        print(f"error: {browser} wrote no screenshot (exit {proc.returncode})\n{proc.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size} bytes) from {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
