import dagster as dg

from signals_assets.storage.object_store import LocalObjectStore, ObjectStore, S3ObjectStore


class ObjectStoreResource(dg.ConfigurableResource):
    """Inbox, batch files, team config and sandbox logs: a local folder or an S3 bucket.

    S3 credentials and region come from the standard AWS environment (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION, instance roles): boto3
    reads them when the client is built, so no secret is part of the resource config."""

    kind: str = "local"
    root: str = ""
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    max_attempts: int = 5

    def open(self) -> ObjectStore:
        if self.kind == "s3":
            from dagster_aws.s3 import S3Resource

            client = S3Resource(endpoint_url=self.endpoint_url or None, max_attempts=self.max_attempts).get_client()
            return S3ObjectStore(self.bucket, self.prefix, self.endpoint_url, client=client)
        return LocalObjectStore(self.root)
