"""The pipeline: prepare -> plan -> apply -> report, as values, built once from one `Settings`.

    settings.py   the operator's choices, one frozen value built at the entry point
    compose.py    the composition root: backend, pin resolver, secrets, holds, forge, fetcher
    stages.py     each stage callable on its own: `prepare`, `plan_prepared`, `apply_planned`
    passes.py     one pass as a numbered story that always reports (`run_pass`)

The CLI and the daemon use only this package to plan and converge; they differ in what they do
with a pass (print it, journal it, post it on a pull request), never in how it is made.
"""
