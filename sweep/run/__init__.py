"""Running a sweep: the pipeline's steps, the executor seam (Ray behind it), the worker's
shard routine and the console summary."""
