"""Many jobs on many GPUs and machines, through Ray: one task per job, placed by Ray on free GPUs."""
