"""Render an HTML page (a day report, an exploration page) to a PNG with headless Chromium.

    python scripts/render_report.py PATH_OR_URI --out PAGE.png [--width 1400] [--height 4000]

PATH_OR_URI is a local path, a ``file://`` URI or an ``s3://`` URI (read with the lake's S3
settings from the environment). The page is copied into a fresh temporary folder first, so the
screenshot shows exactly the self-contained file. Needs a Chromium binary (Debian: ``apt-get
install chromium``); ``--chromium`` names another one.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from passion_tasks.lake import filesystem_for

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: Headless, offline and stateless: no GPU, no network side traffic, a throwaway profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def read_page(path_or_uri: str) -> bytes:
    """The bytes of a local file or of a ``file://`` / ``s3://`` object."""
    filesystem, path = filesystem_for(path_or_uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def render_png(html: bytes, out: Path, *, width: int, height: int, chromium: str) -> None:
    """Screenshot ``html`` at ``width`` x ``height`` CSS pixels into ``out``."""
    with tempfile.TemporaryDirectory(prefix="passion-render-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_bytes(html)
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--screenshot={out.resolve()}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ]
        finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if finished.returncode != 0 or not out.is_file():
        raise SystemExit(f"chromium failed ({finished.returncode}):\n{finished.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", metavar="PATH_OR_URI")
    parser.add_argument("--out", type=Path, required=True, metavar="PNG")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--chromium", default=None, help="the browser binary (default: found on PATH)")
    args = parser.parse_args(argv)

    chromium = args.chromium or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if chromium is None:
        raise SystemExit(f"no browser found (tried {', '.join(CHROMIUM_NAMES)}); pass --chromium")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    render_png(read_page(args.page), args.out, width=args.width, height=args.height, chromium=chromium)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
