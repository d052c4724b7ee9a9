"""The ``pixseek`` command. Library errors become one-line messages here, and nowhere below."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import click

from .cli_common import db_option, folder_arg
from .cli_common import show as _show
from .cli_serve import serve_cmd
from .errors import PixseekError

EXIT_INTERRUPTED = 130
MAX_SQL_INT = 2**63 - 1  # SQLite's largest integer: no option may hand it more


class _Handler(logging.StreamHandler):
    """pixseek's notices on stderr (installed once per process)."""


def _setup_logging(verbose: bool) -> None:
    logging.getLogger().addHandler(logging.NullHandler())  # keep libraries' root logs quiet
    log = logging.getLogger("pixseek")
    if not any(isinstance(h, _Handler) for h in log.handlers):
        h = _Handler(sys.stderr)
        h.setFormatter(logging.Formatter("pixseek: %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


class PixseekGroup(click.Group):
    """Turns PixseekError into ``Error: message (hint)`` and exit code 1; Ctrl-C into exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PixseekError as e:
            msg = f"Error: {e.message}"
            if e.hint:
                msg += f" ({e.hint})"
            click.echo(_show(msg), err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted: work committed so far is kept; run the same command again to resume.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=PixseekGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Print informational notices.")
@click.version_option(package_name="pixseek")
def cli(verbose: bool) -> None:
    """pixseek: semantic image search over your own folders (CLIP, SQLite + FAISS, offline)."""
    _setup_logging(verbose)


@cli.command("index")
@click.argument("paths", nargs=-1, type=click.Path())
@db_option
@click.option(
    "--model",
    "-m",
    default=None,
    help="Model spec: registry name, ARCH:TAG, ARCH:/path/ckpt or a checkpoint (default: the index's "
    "model, else the registry default).",
)
@click.option("--exclude", "-x", multiple=True, metavar="GLOB", help="Skip files/folders matching GLOB (repeatable).")
@click.option("--include-hidden", is_flag=True, help="Also index hidden files and folders.")
@click.option(
    "--batch-size",
    "-b",
    default=None,
    type=click.IntRange(1, 4096),
    help="Images per model batch (default: 256 on a GPU, 32 on CPU).",
)
@click.option(
    "--workers",
    "-j",
    default=None,
    type=click.IntRange(0, 256),
    help="Decode processes (default: cores + 1, at most 16; 0 = in-process).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option(
    "--runtime",
    type=click.Choice(["auto", "torch"]),
    default=None,
    help="auto (default; PIXSEEK_RUNTIME overrides): on a CPU, embed with the model's ONNX export once "
    "a run has made it (faster start and forward pass); torch: always the torch model.",
)
@click.option(
    "--index-type",
    default=None,
    metavar="TYPE",
    help="auto (by size and memory), or a FAISS factory string: Flat, HNSW32, IVF4096,Flat, "
    "IVF4096,SQ8, IVF4096,PQ32. Remembered by the index.",
)
@click.option(
    "--max-pixels", default=None, type=click.IntRange(1, MAX_SQL_INT), help="Pixel cap per image (default 150M)."
)
@click.option("--rebuild-vectors", is_flag=True, help="Rebuild the FAISS index from SQLite (alone or with PATHs).")
@click.option(
    "--prune",
    is_flag=True,
    help="Remove the images of files not found even when the scan looks untrustworthy (a root that is "
    "empty or on another device, or one that would lose over half of its images).",
)
@click.option(
    "--ocr",
    is_flag=True,
    help="Then read the text in the pictures (after embedding, so search works meanwhile; resumable; needs "
    "pixseek[ocr]). Without PATHS: only that, on the existing index.",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS|auto]",
    help="Decode and embed on a Ray cluster (needs pixseek[ray]): alone, a new Ray on this machine; auto, the one "
    "running here; HOST:6379, a remote head. This process plans and commits. Put PATHS before it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def index_cmd(
    paths,
    db,
    model,
    exclude,
    include_hidden,
    batch_size,
    workers,
    device,
    runtime,
    index_type,
    max_pixels,
    rebuild_vectors,
    prune,
    ocr,
    ray_address,
    as_json,
):
    """Index the images under PATHS (incremental: only new and changed files are embedded).

    Images whose files are gone are removed, unless the scan looks like an unmounted drive: then they
    are kept and a line says how to remove them (--prune)."""
    from .decode import DEFAULT_MAX_PIXELS
    from .errors import NoImagesError
    from .index.indexer import Indexer

    if ray_address is not None:
        from .index.ray_run import check_address

        check_address(ray_address)
    if not paths and not rebuild_vectors and not ocr:
        raise NoImagesError("nothing to index: give one or more folders or images", hint="pixseek index ~/Pictures")

    def new_index(spec: str) -> None:  # a new index gets its model: say which, and why
        from .models.catalog import model_choice

        why = {
            "option": "from --model",
            "env": "from $PIXSEEK_MODEL",
            "default": "the default for new indexes; --model NAME to choose, `pixseek models` lists them",
        }[model_choice(model)[1]]
        click.echo(_show(f"model: {spec} ({why})"), err=True)

    ix = Indexer(
        db,
        model=model,
        device=device,
        batch_size=batch_size,
        workers=workers,
        exclude=exclude,
        include_hidden=include_hidden,
        max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
        progress=sys.stderr.isatty() and not as_json,
        index_type=index_type,
        runtime=runtime,
        prune=prune,
        on_new_index=new_index,
        ocr=ocr,
        ray=ray_address,
    )
    if ocr and not paths:
        from .index.ocr import read_text

        if rebuild_vectors:
            ix.rebuild_vectors()
        r = read_text(db, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, progress=ix.progress)
        click.echo(json.dumps({"ocr": r.to_dict()}) if as_json else r.line())
        return
    if rebuild_vectors and not paths:
        t0 = time.perf_counter()
        vi = ix.rebuild_vectors()
        out = {"rebuilt": vi.ntotal, "seconds": round(time.perf_counter() - t0, 3)}
        click.echo(
            json.dumps(out) if as_json else f"rebuilt vector index: {vi.ntotal} vectors in {out['seconds']:.2f} s"
        )
        return
    if rebuild_vectors:
        ix.rebuild_vectors()
    s = ix.run(paths)
    if as_json:
        click.echo(json.dumps(s.to_dict()))
        return
    line = (
        f"added {s.added}, updated {s.updated}, moved {s.moved}, removed {s.removed}, "
        f"unchanged {s.unchanged}, failed {s.failed} in {s.seconds:.1f} s "
        f"({s.images_per_s:.1f} images/s); {s.total} images in the index"
    )
    click.echo(line)
    if s.ocr is not None:
        click.echo(s.ocr.line())
    if s.aliases:
        click.echo(
            f"{s.aliases} path{'s' if s.aliases != 1 else ''} reach files indexed under another path "
            "(symlinks, hard links): one file is one image",
            err=True,
        )
    if s.hashed:
        click.echo(f"perceptual hashes filled for {s.hashed} images indexed before (nothing re-embedded)", err=True)
    for note in s.notes:
        click.echo(_show(note), err=True)
    if s.metadata_filled:
        n = s.metadata_filled
        images = f"{n} image{'s' if n != 1 else ''}"
        click.echo(f"read camera and GPS of {images} indexed before (no re-embedding)", err=True)
    if s.failed or s.known_failures:
        n = s.failed + s.known_failures
        click.echo(f"{n} file{'s' if n != 1 else ''} could not be indexed: see `pixseek errors`", err=True)


@cli.command("forget")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the count as JSON.")
def forget_cmd(paths, db, as_json):
    """Remove from the index everything at or under PATHS, on purpose (the paths need not exist).

    For a folder that is gone for good; a folder that is only unplugged keeps its images."""
    from .index.indexer import Indexer

    n = Indexer(db).forget(paths)
    click.echo(json.dumps({"forgot": n}) if as_json else f"forgot {n} image{'s' if n != 1 else ''}")


@cli.command("search")
@click.argument("query", nargs=-1)
@db_option
@click.option("--image", "-i", "images", multiple=True, metavar="PATH[::W]", help="Query image (repeatable).")
@click.option("--text", "-t", "texts", multiple=True, metavar="TEXT[::W]", help="More query text (repeatable).")
@click.option("--not", "negatives", multiple=True, metavar="TEXT[::W]", help="Push results away from TEXT.")
@click.option(
    "--similar",
    type=click.IntRange(0, MAX_SQL_INT),
    default=None,
    metavar="ID",
    help="Images like indexed image ID (with a text or --image: all of them combined).",
)
@click.option("-k", "--top", "k", default=20, show_default=True, type=click.IntRange(1, 100000))
@click.option("--min-score", type=float, default=None, help="Drop results below this cosine score.")
@click.option(
    "--cutoff",
    type=click.Choice(["auto", "off"]),
    default="off",
    show_default=True,
    help="auto: only results that stand out from this query's background (the irrelevant tail is cut, and "
    "says so); off: always -k results.",
)
@click.option("--model", "-m", default=None, help="Model spec (default: the one the index was built with).")
@click.option("--device", default="auto", show_default=True)
@click.option("--in", "folder", default=None, metavar="FOLDER", help="Only images in FOLDER or below it.")
@click.option("--type", "formats", multiple=True, metavar="FORMAT", help="Only this file type, e.g. JPEG (repeatable).")
@click.option(
    "--since", default=None, metavar="YYYY-MM-DD", help="Only images dated on or after (EXIF date, else file time)."
)
@click.option("--until", default=None, metavar="YYYY-MM-DD", help="Only images dated on or before.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="Only images with this zero-shot tag (repeatable: all must match; `pixseek tags` lists them).",
)
@click.option(
    "--min-side",
    default=0,
    type=click.IntRange(0, MAX_SQL_INT),
    help="Only images whose shorter side has this many pixels.",
)
@click.option(
    "--camera",
    "cameras",
    multiple=True,
    metavar="NAME",
    help="Only photos taken with this camera (EXIF): its make, model or both, any case (repeatable).",
)
@click.option(
    "--place",
    "places",
    multiple=True,
    metavar="PLACE",
    help="Only photos taken in this town, region or country (from their GPS), e.g. Paris or 'Paris, France' "
    "(repeatable).",
)
@click.option("--near", default=None, metavar="LAT,LON,KM", help="Only photos taken within KM of a point (GPS).")
@click.option("--has-gps", is_flag=True, help="Only photos with a GPS position.")
@click.option(
    "--sort",
    type=click.Choice(["score", "newest", "oldest"]),
    default="score",
    show_default=True,
    help="newest / oldest: the matches (after -k, --min-score and the filters) by date, EXIF time else file time.",
)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "semantic", "keyword"]),
    default="hybrid",
    show_default=True,
    help="Rank text by meaning and keywords fused, by meaning alone, or by keywords alone "
    '(file name, folders, text in pictures, ...). "Quoted words" must appear literally.',
)
@click.option("--hide-dupes", is_flag=True, help="Leave out near-duplicates of a better result (see `pixseek dupes`).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def search_cmd(
    query,
    db,
    images,
    texts,
    negatives,
    similar,
    k,
    min_score,
    cutoff,
    model,
    device,
    folder,
    formats,
    since,
    until,
    min_side,
    mode,
    cameras,
    places,
    near,
    has_gps,
    sort,
    hide_dupes,
    tags,
    as_json,
):
    """Search by text (QUERY), by example image (--image), or both; weights as TEXT::0.5.

    With only --tag, the tags' names are the query."""
    from .errors import QueryError
    from .search import Engine, Filter
    from .store.filters import parse_date, parse_near

    text = " ".join(query).strip()
    all_texts = ([text] if text else []) + list(texts)
    if similar is None and not all_texts and not images and any(t.strip() for t in tags):
        all_texts = [" ".join(t.strip() for t in tags)]  # the tagged pictures, best first
    if similar is None and not all_texts and not images:
        raise QueryError("empty query: give a text, --image PATH, or both", hint='pixseek search "a red car at night"')
    filt = Filter(
        folder=folder_arg(folder),
        formats=tuple(formats),
        date_from=parse_date(since),
        date_to=parse_date(until),
        min_side=min_side,
        cameras=tuple(cameras),
        places=tuple(places),
        near=parse_near(near),
        has_gps=has_gps,
        tags=tuple(tags),
    ).validate()
    with Engine.open(db, model=model, device=device) as eng:
        cut_mode = "auto" if cutoff == "auto" else None
        results = eng.search(
            all_texts,
            images,
            negatives,
            k,
            similar=similar,
            min_score=min_score,
            filter=filt,
            mode=mode,
            sort=sort,
            hide_dupes=hide_dupes,
            cutoff=cut_mode,
        )
    cut = results.cutoff
    if as_json:
        rows = [r.to_dict() for r in results]
        click.echo(json.dumps({"results": rows, "cutoff": cut.to_dict()} if cut is not None else rows))
        return
    for r in results:
        why = f"  [{', '.join(r.why)}]" if r.why and list(r.why) != ["image meaning"] else ""
        day = f"{_day(r.date)}  " if sort != "score" else ""
        click.echo(f"{r.rank:>4}  {r.score:.4f}  {day}{_show(r.path)}{why}")
    if cut is not None:
        line = ("" if results or not cut.applied else "no good match: ") + cut.describe()
        click.echo(line + (" (--cutoff off shows them)" if cut.below else ""))
    elif not results:
        click.echo("no good match" + (f" (nothing scored >= {min_score})" if min_score is not None else ""))


def _day(epoch: float) -> str:
    """A date as YYYY-MM-DD in local time ("?" beyond what the platform's clock can show)."""
    try:
        return time.strftime("%Y-%m-%d", time.localtime(epoch))
    except (OverflowError, OSError, ValueError):
        return "?" + " " * 9


@cli.command("stats")
@db_option
@click.option("--json", "as_json", is_flag=True)
def stats_cmd(db, as_json):
    """Counts, model, index type, sizes and errors of an index."""
    from .search.stats import collect

    st = collect(db)
    if as_json:
        click.echo(json.dumps(st))
        return
    for key, value in st.items():
        if key == "roots":
            value = ", ".join(f"{r} ({n})" for r, n in value) or "-"
        elif key == "text_in_pictures":  # `pixseek index --ocr`
            value = (
                f"read {value['read']}: {value['with_text']} with text, {value['no_text']} without, "
                f"{value['failed']} failed; {value['pending']} to read"
            )
        click.echo(_show(f"{key.replace('_', ' '):<16} {value}"))


@cli.command("errors")
@db_option
@click.option("--limit", "-n", default=None, type=click.IntRange(1, MAX_SQL_INT))
@click.option("--json", "as_json", is_flag=True)
def errors_cmd(db, limit, as_json):
    """Files that could not be indexed, with the stage and the reason."""
    from .store import Store

    with Store.open(db, readonly=True) as store:
        rows = store.errors(limit)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no errors")
        return
    for r in rows:
        click.echo(_show(f"{r['stage']:<7} {r['path']}: {r['message']}"))


@cli.group("models", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@click.pass_context
def models_grp(ctx, as_json):
    """Models to choose from for --model: the bundled ones and recommended pretrained ones for photos, with
    size, languages, licence, published accuracy and whether they are on disk (any open_clip ARCH:TAG or
    local checkpoint works too). `pixseek models fetch NAME` downloads one."""
    if ctx.invoked_subcommand is not None:
        return
    from .models import default_model_spec, load_registry
    from .models.catalog import format_table, rows, sources

    table = rows()
    if as_json:
        reg = load_registry().get("models", {})
        out = {"default": default_model_spec(), "models": reg, "catalog": [r.to_dict() for r in table]}
        click.echo(json.dumps({**out, "sources": sources()}))
        return
    click.echo(format_table(table))


@models_grp.command("fetch")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def models_fetch_cmd(name, as_json):
    """Download a model's weights into the Hugging Face cache (NAME from `pixseek models`, or any open_clip
    ARCH:TAG); offline, say which file to get elsewhere."""
    from .models.catalog import fetch

    got = fetch(name)
    if as_json:
        click.echo(json.dumps(got.to_dict()))
        return
    use = f"--model {got.spec}"
    if got.kind == "bundled":
        click.echo(f"{got.spec} ships with pixseek: nothing to fetch (use {use})")
    elif got.kind == "local":
        click.echo(_show(f"{got.spec} is a local file: nothing to fetch (use {use})"))
    else:
        click.echo(_show(f"{got.spec}: {'already on disk' if got.already else 'downloaded'}: {got.path}"))
        click.echo(f"use it with: pixseek index PATH {use} (for a new index: an existing one keeps its model)")


@cli.group("datasets")
def datasets_grp():
    """Training data for `pixseek train`."""


@datasets_grp.command("fetch")
@click.argument("name", type=click.Choice(["emoji", "openclipart", "tuxpaint"]))
@click.option(
    "--dest", type=click.Path(file_okay=False), default=None, help="Where to put it (default: DATA_DIR/datasets/NAME)."
)
@db_option
@click.option(
    "--from",
    "--tarballs",
    "tarballs",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Take already downloaded package files from this folder (.tgz for emoji, .deb for the others).",
)
@click.option("--json", "as_json", is_flag=True)
def datasets_fetch_cmd(name, dest, db, tarballs, as_json):
    """Fetch a dataset and write its manifest: emoji (Twemoji + Noto art with names, via npm), openclipart
    (public-domain clip art with titles, from Debian) or tuxpaint (the photo test set, from Debian)."""
    from collections import Counter
    from pathlib import Path

    from .store import DataDir
    from .train.datasets import fetch_emoji, read_manifest
    from .train.photosets import fetch_openclipart, fetch_tuxpaint

    target = Path(dest) if dest else DataDir.resolve(db).root / "datasets" / name
    local = Path(tarballs) if tarballs else None
    if name == "emoji":
        manifest = fetch_emoji(target, local)
    else:
        manifest = (fetch_tuxpaint if name == "tuxpaint" else fetch_openclipart)(target, local)
    rows = read_manifest(manifest)
    splits = Counter(r.split for r in rows)
    out = {
        "manifest": str(manifest),
        "images": len(rows),
        "heldout_images": splits.get("heldout", 0),
        "concepts": len({r.concept for r in rows}),
        "heldout_concepts": len({r.concept for r in rows if r.split == "heldout"}),
        "splits": dict(splits),
    }
    parts = ", ".join(f"{k} {v}" for k, v in sorted(splits.items()))
    click.echo(
        json.dumps(out)
        if as_json
        else f"{out['images']} images of {out['concepts']} concepts ({parts}); held out: {out['heldout_concepts']} "
        f"concepts -> {manifest}"
    )


@cli.command("train")
@click.option(
    "--data",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Caption manifest (JSONL: image + caption/captions per line); repeat to train on several.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--arch", default="pixseek-minilm-vit", show_default=True, help="Config in models/configs.")
@click.option("--name", default="model", show_default=True, help="Exported weights: OUT/NAME.safetensors.")
@click.option("--init", default=None, help="Fine-tune from this model spec.")
@click.option("--epochs", type=float, default=None, help="Training length in epochs (default 30).")
@click.option("--minutes", type=float, default=None, help="Wall-clock budget instead of epochs.")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(2))
@click.option("--lr", default=2e-3, show_default=True, type=float)
@click.option("--warmup", default=100, show_default=True, type=click.IntRange(0))
@click.option(
    "--image-loss",
    default=1.0,
    show_default=True,
    type=float,
    help="Weight of the view-to-view (cross-style) contrastive term.",
)
@click.option("--unlock-text", is_flag=True, help="Also train a pretrained text tower.")
@click.option(
    "--views",
    default=3,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Locked backbone: cached views per picture.",
)
@click.option(
    "--anchor",
    default=0.0,
    show_default=True,
    type=float,
    help="Locked backbone: pull of the class vectors towards the class names (negative: keep them fixed).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--include-heldout", is_flag=True, help="Train on held-out concepts too.")
@click.option("--no-resume", is_flag=True, help="Start over even if OUT has a checkpoint.")
@click.option("--device", default=None)
@click.option("--json", "as_json", is_flag=True)
def train_cmd(
    data,
    out,
    arch,
    name,
    init,
    epochs,
    minutes,
    batch_size,
    lr,
    warmup,
    image_loss,
    unlock_text,
    views,
    anchor,
    seed,
    include_heldout,
    no_resume,
    device,
    as_json,
):
    """Train (or fine-tune) a CLIP-style model contrastively on captioned images."""
    from .models import openclip
    from .train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        data=data[0],
        more_data=tuple(data[1:]),
        views=views,
        anchor=anchor,
        out=out,
        arch=arch,
        name=name,
        init=init,
        epochs=None if minutes and epochs is None else (epochs or 30.0),
        minutes=minutes,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        image_loss=image_loss,
        lock_text=not unlock_text,
        seed=seed,
        device=device,
        resume=not no_resume,
        splits=("train", "heldout") if include_heldout else ("train",),
        progress=sys.stderr.isatty() and not as_json,
    )
    if "image_head" in openclip.extras(arch):  # a locked pretrained backbone: only its head trains
        from .train.locked import LockedTrainer

        if unlock_text or (device and device != "cpu"):
            raise click.UsageError(f"{arch} trains its head on cached CPU features: no --unlock-text or --device")
        r = LockedTrainer(cfg).run()
    else:
        if len(data) > 1 or views != 3 or anchor != 0.0:
            raise click.UsageError("several --data manifests, --views and --anchor need a locked-backbone architecture")
        r = Trainer(cfg).run()
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(
        f"trained {r['steps']} steps in {r['seconds']:.0f} s: loss {r['first_loss']:.3f} -> "
        f"{r['ema_loss']:.3f} (smoothed); weights: {r['weights']}"
    )


@cli.command("eval")
@click.option("--model", "-m", default=None, help="Model spec (default: the registry default).")
@click.option(
    "--data",
    default=None,
    type=click.Path(dir_okay=False),
    help="Manifest (default: the fetched emoji dataset in the data dir).",
)
@db_option
@click.option("--device", default=None)
@click.option(
    "--split", default="test", show_default=True, help="Photo sets: which split is the gallery ('all' for every one)."
)
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(model, data, db, device, split, as_json):
    """Text->image and image->image retrieval, zero-shot accuracy, baselines and chance: on the emoji
    set (cross-style, trained vs held-out concepts) or on a photo set (a manifest with categories and no
    art styles, like `pixseek datasets fetch tuxpaint`; captions in every language it has)."""
    from pathlib import Path

    from .models import load_torch
    from .store import DataDir
    from .train.evaluate import evaluate, format_table
    from .train.photo_eval import evaluate_photos, format_photo_table, is_photo_set, items

    manifest = Path(data) if data else DataDir.resolve(db).root / "datasets" / "emoji" / "manifest.jsonl"
    if is_photo_set(manifest):
        items(manifest, split)  # a bad split is one line before any model loads
        r = evaluate_photos(load_torch(model, device), manifest, split)
        click.echo(json.dumps(r) if as_json else format_photo_table(r))
        return
    r = evaluate(model, manifest, device=device)
    click.echo(json.dumps(r) if as_json else format_table(r))


@cli.command("doctor")
@db_option
@click.option("--check-only", is_flag=True, help="Report problems without repairing anything.")
@click.option("--json", "as_json", is_flag=True)
def doctor_cmd(db, check_only, as_json):
    """Check the index (database, vectors, FAISS cache, thumbnails, files) and repair what can be rebuilt.

    Exits 1 when something is wrong that it could not (or, with --check-only, did not) repair."""
    from .index.doctor import run

    report = run(db, repair=not check_only)
    if as_json:
        click.echo(json.dumps([f.__dict__ for f in report.findings]))
    else:
        for f in report.findings:
            click.echo(_show(f.line()), err=f.status == "failed")
    sys.exit(report.exit_code)


@cli.command("ui")
@db_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to serve on; the default serves this machine only."
)
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--max-upload-mb",
    default=20,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Largest query picture accepted.",
)
def ui_cmd(db, host, port, max_upload_mb):
    """Open the search page in the browser (Streamlit)."""
    from .ui.launch import launch

    launch(db, host=host, port=port, max_upload_mb=max_upload_mb)


cli.add_command(serve_cmd)
from .cli_ocr import text_cmd  # noqa: E402  (a command in its own module, registered here)

cli.add_command(text_cmd)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli(prog_name="pixseek")


from .cli_dupes import dupes_cmd  # noqa: E402  (registered last: it imports nothing from here)

cli.add_command(dupes_cmd)

if __name__ == "__main__":
    main()


from .cli_tags import tags_cmd  # noqa: E402  (commands of their own modules, registered last)

cli.add_command(tags_cmd)
