"""What runs processes and owns the process: a run into its files with the process's signal
handling (run, signals), `seqbench ab`'s alternating runs of two versions (ab), and `seqbench
launch`'s shards through submitit (launch). Everything here sits above the sweep and the analysis
it drives; nothing below imports it."""
