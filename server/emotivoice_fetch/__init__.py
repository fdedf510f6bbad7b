"""The fetch step: S3/MinIO -> model cache volume, verified, resumable and crash-safe.

`emotivoice_fetch.marker.verify_complete` is the one function the server needs; importing it
does not import boto3.
"""
