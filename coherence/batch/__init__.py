"""Many clips at once: a pipeline or scoring per clip on a local process pool or a Ray cluster, with a resumable
results ledger (``OUT_DIR/results.jsonl``).

``run_batch("clips/", "out/", options=BatchOptions(smooth=True, score=True), workers=4)`` runs every clip found
under ``clips/`` and appends one JSON line per finished clip; running it again skips what is done.
"""

from coherence.batch.executors import EXECUTORS, Executor, LocalExecutor, RayExecutor, get_executor, init_worker
from coherence.batch.jobs import BatchOptions, Job, collect_clips, find_clips, read_manifest, run_job
from coherence.batch.ledger import LEDGER_NAME, Ledger, is_done, latest_records, read_ledger
from coherence.batch.runner import BatchPlan, BatchSummary, plan_batch, run_batch

__all__ = [
    "EXECUTORS",
    "LEDGER_NAME",
    "BatchOptions",
    "BatchPlan",
    "BatchSummary",
    "Executor",
    "Job",
    "Ledger",
    "LocalExecutor",
    "RayExecutor",
    "collect_clips",
    "find_clips",
    "get_executor",
    "init_worker",
    "is_done",
    "latest_records",
    "plan_batch",
    "read_ledger",
    "read_manifest",
    "run_batch",
    "run_job",
]
