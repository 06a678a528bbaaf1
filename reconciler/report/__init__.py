"""Pure renderings of outcomes for people: commit statuses, the PR comment, the lock view, the desired tree."""
