"""The sweep: config (what to measure), plan (rounds, shards, resume, append: checked before anything
runs), budget (the pre-flight skip rules), runner (check, build, time, stream rows to a sink), rounds,
resume. Running it into files, with the process's signal handling, is orchestration.run's job."""
