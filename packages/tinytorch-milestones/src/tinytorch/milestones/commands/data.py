"""``tito data``: list the datasets, download one, show where they live.

* ``tito data list``: every dataset, its size, source, license and whether it is
  available offline (shipped, cached, or not downloaded yet).
* ``tito data download NAME [--retries N] [--timeout S] [--deadline S] [--no-progress]``:
  fetch into the cache, verified; exit 1 with instructions when every mirror fails or the
  cache cannot be written; bad option values are usage errors (exit 2).
* ``tito data path [NAME]``: the cache directory, or where NAME is read from.
"""

from __future__ import annotations

import sys

from tinytorch.milestones.cli import positive_int, positive_seconds


def register(subparsers) -> None:
    from tinytorch.milestones.data.datasets import DATASETS

    parser = subparsers.add_parser(
        "data",
        help="list, download and locate datasets",
        description="Datasets of the milestones. Cache: $TINYTORCH_DATA, else the user cache directory.",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1], parser=parser)
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")

    p_list = sub.add_parser("list", help="the datasets and whether each is available offline")
    p_list.set_defaults(func=_list, parser=p_list)

    p_dl = sub.add_parser("download", help="download a dataset into the cache (checksum verified)")
    p_dl.add_argument("name", choices=sorted(DATASETS), help="dataset to download")
    p_dl.add_argument("--retries", type=positive_int, default=3, help="attempts per mirror (default 3)")
    p_dl.add_argument("--timeout", type=positive_seconds, default=30.0,
                      help="seconds to wait for the network, per connection and between bytes (default 30)")
    p_dl.add_argument("--deadline", type=positive_seconds, default=None,
                      help="seconds for each file, all mirrors and retries included "
                      "(default: 60 s plus 100 KiB/s of the file's size)")
    p_dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_dl.set_defaults(func=_download, parser=p_dl)

    p_path = sub.add_parser("path", help="print the cache directory, or where a dataset is read from")
    p_path.add_argument(
        "name", nargs="?", choices=sorted(DATASETS), help="a dataset (default: the cache root)"
    )
    p_path.set_defaults(func=_path, parser=p_path)


def _status(name: str) -> str:
    from tinytorch.milestones.data import datasets

    info = datasets.DATASETS[name]
    if info.shipped:
        return "shipped"
    return "cached" if datasets.is_cached(name) else "not downloaded"


def _list(args) -> int:
    from tinytorch.milestones.data import data_dir, datasets

    rows = [("NAME", "STATUS", "SIZE", "DESCRIPTION")]
    for name, info in datasets.DATASETS.items():
        rows.append((name, _status(name), info.size, info.title))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    print()
    for name, info in datasets.DATASETS.items():
        print(f"{name}: {info.source}; license {info.license}")
    print(f"\ncache: {data_dir()}  (set TINYTORCH_DATA to move it)")
    print("download one with: tito data download NAME")
    return 0


def _download(args) -> int:
    from tinytorch.milestones.data import DownloadError, datasets

    info = datasets.DATASETS[args.name]
    if info.shipped:
        where = datasets.shipped_path(args.name)
        print(f"{args.name} ships with tinytorch-milestones: nothing to download ({where})")
        return 0
    try:
        where = datasets.download_dataset(
            args.name, retries=args.retries, timeout=args.timeout, deadline=args.deadline,
            progress=not args.no_progress,
        )
    except DownloadError as err:  # CacheError (a local problem) included: its message says what to do
        print(f"tito data download {args.name}: {err}", file=sys.stderr)
        return 1
    print(f"{args.name}: ready in {where}")
    return 0


def _path(args) -> int:
    from tinytorch.milestones.data import data_dir, datasets

    if args.name is None:
        print(data_dir())
    elif datasets.DATASETS[args.name].shipped:
        print(datasets.shipped_path(args.name))
    else:
        print(datasets.dataset_dir(args.name))
    return 0
