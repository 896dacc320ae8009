import dagster as dg

from signals_assets.objects import LocalObjectStore, ObjectStore, S3ObjectStore


class ObjectStoreResource(dg.ConfigurableResource):
    """Inbox, batch files, team config and sandbox logs: a local folder or an S3 bucket."""

    kind: str = "local"
    root: str = ""
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""

    def open(self) -> ObjectStore:
        if self.kind == "s3":
            return S3ObjectStore(self.bucket, self.prefix, self.endpoint_url)
        return LocalObjectStore(self.root)
