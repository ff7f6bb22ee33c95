"""The sweep: config (what to measure), plan (rounds, shards, resume, append: checked before anything
runs), budget (memory pre-flight), runner (check, build, time, write), rounds, resume, signals."""
