"""The common recipe's init container, for the cold-start benchmark's baseline: copy a prefix.

What `aws s3 cp --recursive` (or a wget loop) does: list the prefix and download each object in
turn, one stream at a time, with no checksum and no completion marker. Standalone, so the
benchmark runs it in the server image (mounted from a ConfigMap) like our fetch step.

    python bench/recipe_fetch.py --endpoint URL --uri s3://BUCKET/PREFIX --dest DIR
Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import boto3
from botocore.config import Config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args()
    bucket, _, prefix = args.uri.removeprefix("s3://").partition("/")
    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    began = time.monotonic()
    count = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            target = args.dest / obj["Key"][len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
            count += 1
            size += obj["Size"]
    print(f"copied {count} objects, {size / 1e6:.1f} MB in {time.monotonic() - began:.1f} s")


if __name__ == "__main__":
    main()
