"""Run folders kept in S3: ``asyncbench report s3://BUCKET/RUN`` copies one to local disk first.

Only what the analysis reads is copied (``manifest.json`` and ``data/``; not an earlier
report's files nor the load generator's logs), file by file straight to disk, so memory does
not grow with the run. A file already copied with the same size is not fetched again, so a
second report of the same folder starts at once. Credentials come from boto3's usual chain
(environment, profile, SSO, instance role).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from asyncbench.errors import RunFolderError

__all__ = ["S3_PREFIX", "fetch_run_folder", "is_remote", "local_copy_path"]

S3_PREFIX = "s3://"
_WANTED = ("manifest.json", "data/")


def is_remote(location: str) -> bool:
    return location.startswith(S3_PREFIX)


def _split(url: str) -> tuple[str, str]:
    """``s3://bucket/some/run/`` -> (bucket, ``some/run``); refuses a URL without a folder."""
    bucket, _, key = url[len(S3_PREFIX) :].partition("/")
    key = key.strip("/")
    if not bucket or not key:
        raise RunFolderError(f"{url} names no run folder; use s3://BUCKET/PATH/TO/RUN")
    return bucket, key


def local_copy_path(url: str, root: Path) -> Path:
    """Where the copy of ``url`` lives under ``root``: ``root/BUCKET/PATH/TO/RUN``."""
    bucket, key = _split(url)
    return Path(root, bucket, *PurePosixPath(key).parts)


def fetch_run_folder(
    url: str,
    root: Path,
    *,
    s3: Any = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Copy the run folder at ``url`` (``s3://BUCKET/PATH/TO/RUN``) under ``root`` and return
    the local folder; raises :class:`RunFolderError` with what to do when it cannot."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, key = _split(url)
    target = local_copy_path(url, root)
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    copied = kept = 0
    found_manifest = False
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{key}/")
        for page in pages:
            for entry in page.get("Contents", []):
                relative = entry["Key"][len(key) + 1 :]
                if not relative.startswith(_WANTED) or relative.endswith("/"):
                    continue
                found_manifest |= relative == "manifest.json"
                path = target.joinpath(*PurePosixPath(relative).parts)
                if path.is_file() and path.stat().st_size == entry["Size"]:
                    kept += 1
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(path.name + ".part")
                s3.download_file(bucket, entry["Key"], str(partial))
                partial.replace(path)  # a stopped copy never leaves a truncated part in place
                copied += 1
                if progress is not None and copied % 100 == 0:
                    progress(f"copied {copied:,} files of {url}")
    except NoCredentialsError:
        raise RunFolderError(
            f"cannot read {url}: no AWS credentials; set AWS_PROFILE or AWS_ACCESS_KEY_ID, or "
            "copy the folder yourself (aws s3 sync) and report the copy"
        ) from None
    except (BotoCoreError, ClientError) as error:
        raise RunFolderError(f"cannot read {url}: {error}") from None
    if not found_manifest:
        raise RunFolderError(f"no run folder at {url}: it has no manifest.json")
    if progress is not None:
        progress(f"{url}: {copied:,} files copied, {kept:,} already here, into {target}")
    return target
