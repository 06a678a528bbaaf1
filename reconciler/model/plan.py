"""A plan: ordered actions, each with its reason. Frozen value rendered by CLI, PR comment, page, JSON."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict

from reconciler.model.desired import DesiredWorkspace, OrgFailure
from reconciler.model.enums import ActionKind, Mode, Tier
from reconciler.model.holds import Hold
from reconciler.model.observed import ObservedWorkspace


class Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActionKind
    workspace_id: str
    tier: Tier
    reason: str
    desired: DesiredWorkspace | None = None
    observed: ObservedWorkspace | None = None
    restart: bool = True  # for UPDATE: False when only SKILL.md content changed
    held_by: Hold | None = None  # for HOLD: the record that holds it; `reason` says what it would have done


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    revision: str | None = None
    mode: Mode = Mode.RECONCILE
    actions: tuple[Action, ...] = ()
    refused: str | None = None  # set when a guard refused: nothing may be applied
    orgs: tuple[str, ...] = ()  # the orgs that rendered: what this plan converges
    failed_orgs: tuple[OrgFailure, ...] = ()  # orgs that did not render: their workspaces are kept (NOOP)

    def counts(self) -> Counter[ActionKind]:
        return Counter(a.kind for a in self.actions)

    def changes(self) -> tuple[Action, ...]:
        """What apply would do: creates, updates, recreates and deletes (not NOOP, not HOLD)."""
        return tuple(a for a in self.actions if a.kind not in (ActionKind.NOOP, ActionKind.HOLD))

    def held(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind is ActionKind.HOLD)

    def failure_text(self) -> str | None:
        """`org beta failed: <file:line:col: first error>` (None when every org rendered)."""
        if not self.failed_orgs:
            return None
        names = ", ".join(f.org for f in self.failed_orgs)
        return f"org{'s' if len(self.failed_orgs) > 1 else ''} {names} failed: {self.failed_orgs[0].first()}"

    def for_tier(self, tier: Tier) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.tier is tier)

    def summary(self) -> str:
        """The compact counts every rendering shares: `+1 ~2 -/+0 -0 =5` (and `!1` when held)."""
        c = self.counts()
        held = f" !{c[ActionKind.HOLD]}" if c[ActionKind.HOLD] else ""
        return (
            f"+{c[ActionKind.CREATE]} ~{c[ActionKind.UPDATE]} -/+{c[ActionKind.RECREATE]} "
            f"-{c[ActionKind.DELETE]} ={c[ActionKind.NOOP]}{held}"
        )
