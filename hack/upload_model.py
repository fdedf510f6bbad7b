"""Uploads a model directory to S3/MinIO with a SHA256SUMS manifest (for e2e-kind and demos).

    python hack/upload_model.py DIR --endpoint URL --uri s3://BUCKET/PREFIX
Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default minioadmin/minioadmin).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
from pathlib import Path

import boto3
from botocore.config import Config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--uri", required=True)
    args = parser.parse_args()
    bucket, _, prefix = args.uri.removeprefix("s3://").partition("/")
    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "minioadmin"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "minioadmin"),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    lines = []
    for path in sorted(p for p in args.directory.rglob("*") if p.is_file()):
        rel = path.relative_to(args.directory).as_posix()
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}")
        s3.upload_file(str(path), bucket, f"{prefix}/{rel}".lstrip("/"))
        print(f"uploaded {rel}")
    s3.put_object(
        Bucket=bucket,
        Key=f"{prefix}/SHA256SUMS".lstrip("/"),
        Body=("\n".join(lines) + "\n").encode(),
    )
    print(f"uploaded SHA256SUMS ({len(lines)} files)")


if __name__ == "__main__":
    main()
