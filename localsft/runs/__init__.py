"""Training runs: the run-folder contract, one set of status words, and background jobs for the studio.

    folder.py   the parts of a run folder, the event-log reader, atomic writes
    status.py   a run's status and progress, rebuilt from its folder (the one set of status words)
    lock.py     fcntl locks: who writes a run folder, which training runs on this machine
    jobs.py     the studio's training jobs: `localsft train` in a child process, stop, delete
"""
