"""Training runs: the run-folder contract, one set of status words, and background jobs for the studio."""
