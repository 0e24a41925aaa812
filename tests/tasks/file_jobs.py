"""Task connectors whose external system is a folder ($FILE_JOBS_DIR): each job is a JSON file,
so it outlives the runner that created it, which the crash tests kill with SIGKILL.

A job succeeds on its second poll. `creates.log` gets one line per `create` call (its
idempotency key), so a test can count how many jobs were started.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from headwater.tasks import (
    AsyncConnector,
    Resource,
    ResourceMeta,
    TaskExecution,
    idempotency_key,
)


@dataclass
class FileJobMeta(ResourceMeta):
    job_id: str


def _folder() -> Path:
    return Path(os.environ["FILE_JOBS_DIR"])


class _FileJobs(AsyncConnector):
    name = "File Jobs"
    metadata_type = FileJobMeta

    def create(
        self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs
    ):
        key = idempotency_key(task_execution_metadata)
        job_id = uuid.uuid4().hex[:8]
        with (_folder() / "creates.log").open("a") as log:
            log.write(f"{key}\n")
        job = {"key": key, "polls": 0, "n": (inputs or {}).get("n", 2), "deleted": False}
        (_folder() / f"{job_id}.json").write_text(json.dumps(job))
        return FileJobMeta(job_id=job_id)

    def get(self, resource_meta, **kwargs):
        path = _folder() / f"{resource_meta.job_id}.json"
        job = json.loads(path.read_text())
        if job["deleted"]:
            return Resource(phase=TaskExecution.ABORTED, message="deleted")
        job["polls"] += 1
        path.write_text(json.dumps(job))
        if job["polls"] < 2:
            return Resource(phase=TaskExecution.RUNNING, message=f"poll {job['polls']}")
        rows = [{"i": i, "job": resource_meta.job_id} for i in range(job["n"])]
        return Resource(phase=TaskExecution.SUCCEEDED, message="done", outputs={"rows": rows})

    def delete(self, resource_meta, **kwargs):
        path = _folder() / f"{resource_meta.job_id}.json"
        job = json.loads(path.read_text())
        path.write_text(json.dumps({**job, "deleted": True}))


class FileJobConnector(_FileJobs):
    """Finds its jobs by idempotency key after a crash."""

    task_type_name = "file_job"

    def recover(self, idempotency_key, **kwargs):
        for path in sorted(_folder().glob("*.json")):
            if json.loads(path.read_text())["key"] == idempotency_key:
                return FileJobMeta(job_id=path.stem)
        return None


class PlainFileJobConnector(_FileJobs):
    """No recover: Headwater cannot tell whether an interrupted create started a job."""

    task_type_name = "file_job_plain"
