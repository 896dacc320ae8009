"""The production run launcher: dagster-docker's, patient with a slow Docker engine.

docker-py gives up on any API call after 60 s. On a loaded host an engine busy removing a
container (slow on the vfs storage driver) answers later than that, and a run whose container
create/start call timed out failed for nothing but slowness. Named in deploy/dagster.yaml; imported
only by the instance (daemon, webserver, run workers), never by the code location.
"""

from dagster import Field
from dagster_docker import DockerRunLauncher
from dagster_docker.utils import DOCKER_CONFIG_SCHEMA

DEFAULT_CLIENT_TIMEOUT_SECONDS = 300


class PatientDockerRunLauncher(DockerRunLauncher):
    """DockerRunLauncher whose Docker API calls wait `client_timeout_seconds` (default 300)."""

    def __init__(self, inst_data=None, client_timeout_seconds: int = DEFAULT_CLIENT_TIMEOUT_SECONDS, **config):
        super().__init__(inst_data=inst_data, **config)
        self.client_timeout_seconds = client_timeout_seconds

    @classmethod
    def config_type(cls):
        return {
            **DOCKER_CONFIG_SCHEMA,
            "client_timeout_seconds": Field(
                int, is_required=False, default_value=DEFAULT_CLIENT_TIMEOUT_SECONDS,
                description="Seconds any Docker API call may take before it fails (docker-py's default: 60).",
            ),
        }

    def _get_client(self, container_context):
        client = super()._get_client(container_context)
        client.api.timeout = self.client_timeout_seconds  # the default of every request docker-py sends
        return client
