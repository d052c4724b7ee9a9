"""Pick the bundled sample corpus (samples/twemoji) from a fetched emoji dataset.

Usage: python scripts/make_emoji_samples.py DATA_DIR/datasets/emoji samples/twemoji
Takes every 6th base emoji by Unicode sort order plus a few named ones the semantic tests query,
copies the 64 px Twemoji art (composed on white) as NAME.png, and writes the attribution.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from pixseek.train.datasets import ATTRIBUTION, read_manifest

WANTED = {
    "dog face",
    "cat face",
    "slice of pizza",
    "hamburger",
    "heavy black heart",
    "automobile",
    "evergreen tree",
    "palm tree",
    "black sun with rays",
    "snowman without snow",
    "birthday cake",
    "soccer ball",
    "airplane",
    "rocket",
    "guitar",
    "banana",
    "red apple",
    "fire",
    "rainbow",
    "crescent moon",
}


def main(src: str, out: str) -> None:
    rows = [
        s for s in read_manifest(Path(src) / "manifest.jsonl") if s.style == "twitter" and s.extra.get("kind") == "base"
    ]
    rows.sort(key=lambda s: s.concept)
    picked = [s for i, s in enumerate(rows) if i % 6 == 0 or s.captions[0] in WANTED]
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    for s in picked:
        name = re.sub(r"[^a-z0-9]+", "-", s.captions[0].lower()).strip("-") or s.concept.lower()
        shutil.copy(s.image, dest / f"{name}.png")
    (dest / "ATTRIBUTION.txt").write_text(
        "Sample images: Twemoji by Twitter, Inc and other contributors, CC-BY 4.0\n"
        "(https://creativecommons.org/licenses/by/4.0/), from the npm package emoji-datasource-twitter 16.0.0,\n"
        "composed onto a white background by pixseek.\n\n" + ATTRIBUTION + "\n"
    )
    print(f"{len(picked)} images -> {dest}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
