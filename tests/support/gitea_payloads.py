"""Gitea's JSON shapes for the emulator: User, Repository, PayloadCommit, PullRequest, Comment, statuses.

Field names and quirks follow `shared/reference/gitea-api.md` (Gitea 1.25 / Forgejo): a status says
`status` (not `state`) and its `id` is the per-commit index, a PR's `url` is its HTML URL, a branch
commit's tip is `commit.id`, `updated_at == created_at` on statuses, Users carry `username` = `login`.
Webhook bodies are encoded like Go's `json.MarshalIndent(p, "", "  ")` (`go_json`).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any


def rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def go_json(payload: Any) -> bytes:
    """Two-space indented JSON with Go's HTML escaping of <, > and &."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def user(app_url: str, login: str, uid: int = 1) -> dict[str, Any]:
    return {
        "id": uid, "login": login, "login_name": "", "source_id": 0, "full_name": "",
        "email": f"{login}@noreply.localhost", "avatar_url": f"{app_url}avatars/{uid}",
        "html_url": f"{app_url}{login}", "language": "", "is_admin": False, "restricted": False,
        "active": True, "prohibit_login": False, "location": "", "website": "", "description": "",
        "visibility": "public", "followers_count": 0, "following_count": 0, "starred_repos_count": 0,
        "username": login, "created": "2024-01-01T00:00:00Z", "last_login": "2024-01-01T00:00:00Z",
    }


def repository(app_url: str, rid: int, owner: str, name: str, default_branch: str,
               parent: dict[str, Any] | None = None) -> dict[str, Any]:
    full = f"{owner}/{name}"
    return {
        "id": rid, "owner": user(app_url, owner, 1000 + rid), "name": name, "full_name": full,
        "description": "", "empty": False, "private": False, "fork": parent is not None, "template": False,
        "parent": parent, "mirror": False, "size": 0, "language": "", "languages_url": "",
        "html_url": f"{app_url}{full}", "url": f"{app_url}api/v1/repos/{full}",
        "link": "", "ssh_url": f"git@127.0.0.1:{full}.git", "clone_url": f"{app_url}{full}.git",
        "original_url": "", "website": "", "stars_count": 0, "forks_count": 0, "watchers_count": 0,
        "open_issues_count": 0, "open_pr_counter": 0, "release_counter": 0,
        "default_branch": default_branch, "archived": False, "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z", "archived_at": "1970-01-01T00:00:00Z",
        "permissions": {"admin": True, "push": True, "pull": True}, "has_issues": True,
        "has_pull_requests": True, "object_format_name": "sha1", "internal": False,
    }


def git(path: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip() if done.returncode == 0 else ""


def payload_commit(app_url: str, full_name: str, repo: Path, sha: str, with_files: bool) -> dict[str, Any]:
    """Gitea's PayloadCommit for `sha`, read from the real bare repository."""
    fields = git(repo, "log", "-1", "--format=%an%x00%ae%x00%cn%x00%ce%x00%cI%x00%B", sha).split("\x00")
    author, author_email, committer, committer_email, stamp, message = (fields + [""] * 6)[:6]
    added: list[str] | None = None
    removed: list[str] | None = None
    modified: list[str] | None = None
    if with_files:
        added, removed, modified = [], [], []
        changes = git(repo, "diff-tree", "--root", "--no-commit-id", "--name-status", "-r", sha)
        for line in changes.splitlines():
            kind, _, name = line.partition("\t")
            {"A": added, "D": removed}.get(kind[:1], modified).append(name)
    return {
        "id": sha, "message": message.rstrip("\n") + "\n", "url": f"{app_url}{full_name}/commit/{sha}",
        "author": {"name": author, "email": author_email, "username": ""},
        "committer": {"name": committer, "email": committer_email, "username": ""},
        "verification": None, "timestamp": stamp, "added": added, "removed": removed, "modified": modified,
    }


def commit_status(app_url: str, full_name: str, sha: str, row: dict[str, Any], creator: dict[str, Any]
                  ) -> dict[str, Any]:
    stamp = rfc3339(row["created"])
    return {
        "id": row["index"], "status": row["state"], "target_url": row["target_url"],
        "description": row["description"], "url": f"{app_url}api/v1/repos/{full_name}/statuses/{sha}",
        "context": row["context"], "creator": creator, "created_at": stamp, "updated_at": stamp,
    }


def comment(app_url: str, full_name: str, row: dict[str, Any], author: dict[str, Any]) -> dict[str, Any]:
    issue = row["issue"]
    return {
        "id": row["id"], "html_url": f"{app_url}{full_name}/pulls/{issue}#issuecomment-{row['id']}",
        "pull_request_url": f"{app_url}{full_name}/pulls/{issue}", "issue_url": "",
        "user": author, "original_author": "", "original_author_id": 0, "body": row["body"],
        "assets": [], "created_at": rfc3339(row["created"]), "updated_at": rfc3339(row["updated"]),
    }


def branch_ref(label: str, ref: str, sha: str, repo: dict[str, Any] | None) -> dict[str, Any]:
    return {"label": label, "ref": ref, "sha": sha, "repo_id": repo["id"] if repo else -1, "repo": repo}


def pull_request(app_url: str, base_repo: dict[str, Any], pr: dict[str, Any], head: dict[str, Any],
                 base: dict[str, Any], poster: dict[str, Any]) -> dict[str, Any]:
    html = f"{app_url}{base_repo['full_name']}/pulls/{pr['number']}"
    return {
        "id": pr["id"], "url": html, "number": pr["number"], "user": poster, "title": pr["title"],
        "body": "", "labels": [], "milestone": None, "assignee": None, "assignees": None,
        "requested_reviewers": [], "requested_reviewers_teams": [], "state": pr["state"],
        "draft": False, "is_locked": False, "comments": 0, "review_comments": 0,
        "html_url": html, "diff_url": f"{html}.diff", "patch_url": f"{html}.patch",
        "mergeable": pr["state"] == "open", "merged": pr["merged"],
        "merged_at": rfc3339(pr["merged_at"]) if pr.get("merged_at") else None,
        "merge_commit_sha": pr.get("merge_commit_sha"),
        "merged_by": user(app_url, pr["merged_by"], 3) if pr.get("merged_by") else None, "allow_maintainer_edit": False,
        "base": base, "head": head, "merge_base": pr.get("merge_base") or base["sha"], "due_date": None,
        "created_at": rfc3339(pr["created"]), "updated_at": rfc3339(pr["created"]),
        "closed_at": None, "pin_order": 0,
    }
