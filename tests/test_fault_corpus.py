"""The fault corpus: every kind of bad or odd file at once. 0 crashes; each bad file in the errors
table with its reason; each good (if odd) file indexed with the right size and orientation."""

from __future__ import annotations

import os

import numpy as np
from imagegen import draw, encode, jpeg_with_orientation, save
from PIL import Image
from test_index import BAD_KINDS, make_bad_corpus

from pixseek.index.indexer import Indexer
from pixseek.store.database import Store

# Odd but valid pictures: name -> (format, width, height) expected in the index.
GOOD_KINDS = {
    "one-pixel.png": ("PNG", 1, 1),
    "strip-20000x20.png": ("PNG", 20000, 20),
    "cmyk.jpg": ("JPEG", 90, 60),
    "sixteen-bit.png": ("PNG", 64, 48),
    "palette-transparent.png": ("PNG", 50, 40),
    "animated.gif": ("GIF", 40, 30),
    "animated.webp": ("WEBP", 40, 30),
    "exif-rotated.jpg": ("JPEG", 60, 120),
    "corrupt-exif.jpg": ("JPEG", 80, 64),
    "grey.png": ("PNG", 33, 77),
}
VANISHING = {"vanishes.jpg": ("read", "file vanished during indexing")}


def make_good_odd(root) -> None:
    save(Image.new("RGB", (1, 1), "red"), root / "one-pixel.png")
    save(Image.new("RGB", (20000, 20), "blue"), root / "strip-20000x20.png")
    draw(1, (90, 60)).convert("CMYK").save(root / "cmyk.jpg", "JPEG")
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).save(root / "sixteen-bit.png")
    p = draw(2, (50, 40)).convert("P", palette=Image.ADAPTIVE, colors=16)
    p.info["transparency"] = 0
    p.save(root / "palette-transparent.png", transparency=0)
    frames = [draw(i, (40, 30)) for i in range(3)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(root / "animated.webp", save_all=True, append_images=frames[1:], duration=100)
    (root / "exif-rotated.jpg").write_bytes(jpeg_with_orientation(draw(3, (120, 60)), 6))
    data = encode(draw(4, (80, 64)), "JPEG")
    app1 = b"\xff\xe1" + (2 + 6 + 40).to_bytes(2, "big") + b"Exif\x00\x00" + os.urandom(40)
    (root / "corrupt-exif.jpg").write_bytes(data[:2] + app1 + data[2:])
    save(draw(5, (33, 77)).convert("L"), root / "grey.png")
    save(draw(6), root / "vanishes.jpg")


def test_fault_corpus(tmp_path, tiny, monkeypatch):
    root = tmp_path / "faults"
    make_bad_corpus(root)  # 6 good drawings + the bad kinds of test_index
    make_good_odd(root)
    import pixseek.sources as reads  # every read of an indexed file (pixseek.sources.read_bytes)

    real_open = open

    def fake_open(path, *a, **k):
        name = os.path.basename(str(path))
        if name == "locked.jpg":  # tests run as root, so chmod 000 would not stop a read
            raise PermissionError(13, "Permission denied", str(path))
        if name == "vanishes.jpg":  # deleted between the scan and the read
            os.remove(path)
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(reads, "open", fake_open, raising=False)
    s = Indexer(tmp_path / "db", encoder=tiny, batch_size=8, workers=0).run([root])
    st = Store.open(tmp_path / "db")
    errs = {os.path.basename(e["path"]): (e["stage"], e["message"]) for e in st.errors()}
    for name, (stage, prefix) in {**BAD_KINDS, **VANISHING}.items():
        assert name in errs and errs[name][0] == stage and errs[name][1].startswith(prefix), (name, errs.get(name))
    rows = {os.path.basename(r.path): (r.format, r.width, r.height) for r in st.get(range(1, 200)).values()}
    for name, want in GOOD_KINDS.items():
        assert rows.get(name) == want, (name, rows.get(name), errs.get(name))
    assert s.failed == len(BAD_KINDS) + len(VANISHING)
    assert s.added == 6 + len(GOOD_KINDS) and st.integrity_check() == "ok"
    kinds = len(BAD_KINDS) - 1 + len(VANISHING) + len(GOOD_KINDS)  # loop1/loop2 are one kind
    assert kinds >= 15
    st.close()
