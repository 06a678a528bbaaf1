"""The daemon (`reconciler run`): wires the stages into a long-running service; owns no domain logic.

    lock        one instance per state dir (fcntl)
    journal     SQLite history: runs, per-action results, last good revision per tier, unposted statuses
    loop        the worker: one reconcile at a time, newest head wins, supersede, backoff for `error`
    runs        what one run does: pending, plan (once), journal, apply and report, recovery
    reviews     pull request review: plan a PR head against actual state, status + one comment
    scheduler   APScheduler jobs: poll, resync, PR sweep, status retry
    web         /healthz, /metrics, /runs, /runs/<id>, /hooks/gitea (pages optionally apart, behind a token)
    cleanup     which exported trees, caches and PR refs nothing needs any more
    service     builds all of the above once and runs it until SIGTERM (the command is `cli/run.py`)
    healthcheck the container image's HEALTHCHECK (`python3 -m reconciler.daemon.healthcheck`)
"""
