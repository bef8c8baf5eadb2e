"""A private S3 store on loopback for the credentials tests: moto's server with its IAM authentication on.

moto accepts any keys by default; here the set-up (an IAM user allowed s3:GetObject on one bucket, its
access key, the objects) runs first, then every request must carry that user's access key id and a
signature made with its secret key, as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class PrivateBucket:
    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str


def _authenticate_after(endpoint: str, unauthenticated_actions: str) -> str:
    """moto's server API: authenticate every request after this many more (``inf``: never); the old value."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=unauthenticated_actions.encode(),
                                     method="POST", headers={"Content-Type": "text/plain"})
    with _no_proxy.open(request, timeout=10) as response:
        return str(json.load(response)["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


@contextlib.contextmanager
def private_bucket(objects: Mapping[str, bytes]) -> Iterator[PrivateBucket]:
    """A bucket holding `objects` (key -> bytes), readable only with the yielded keys."""
    import boto3
    from botocore.exceptions import ClientError
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto's backends are process-wide (shared by every server of this process): unique names.
        unique = f"{os.getpid()}-{secrets.token_hex(4)}"
        bucket, user = f"private-{unique}", f"model-reader-{unique}"
        setup = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "setup",
                 "aws_secret_access_key": "setup"}
        iam, s3 = boto3.client("iam", **setup), boto3.client("s3", **setup)
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="read-models", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        s3.create_bucket(Bucket=bucket)
        for name, body in objects.items():
            s3.put_object(Bucket=bucket, Key=name, Body=body)
        previous = _authenticate_after(endpoint, "0")
        try:
            # Authentication is on: the set-up keys, which moto's IAM never issued, are refused now.
            try:
                s3.head_bucket(Bucket=bucket)
            except ClientError:
                pass
            else:
                raise AssertionError("moto's S3 server accepted keys its IAM never issued: authentication is off")
            yield PrivateBucket(endpoint, bucket, key["AccessKeyId"], key["SecretAccessKey"])
        finally:
            _authenticate_after(endpoint, previous)  # process-wide: other moto users get the default back
    finally:
        server.stop()
