"""An Okta org in memory: users, groups, one SCIM app with assignments and group-push mappings.

Shapes follow Okta's Management API (users, groups, app users, group-push mappings). A seeded
generator makes orgs of any size reproducibly (e.g. 100,000 users, 5,000 groups).
"""

from __future__ import annotations

import datetime as dt
import random
import string
from dataclasses import dataclass, field
from typing import Any

ACTIVE_USER_STATUSES = frozenset({"PROVISIONED", "ACTIVE", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT"})
DEPARTMENTS = ("Engineering", "Sales", "Marketing", "Finance", "Support", "Research", "Legal", "People")
TITLES = ("Engineer", "Senior Engineer", "Staff Engineer", "Manager", "Director", "Analyst", "Designer", "SRE")
COLOURS = ("Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliett")
GIVEN = ("Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia", "Tim")
FAMILY = ("Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Dijkstra")


def timestamp(moment: dt.datetime | None = None) -> str:
    """Okta's timestamps: UTC, milliseconds ("2026-01-01T00:00:00.000Z"); they sort as strings."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class LogEvent:
    """One System Log event (/api/v1/logs), as much of Okta's LogEvent as kubescim reads."""

    uuid: str
    published: str
    event_type: str
    targets: tuple[tuple[str, str, str], ...]  # (type, id, alternateId)

    def to_api(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "published": self.published,
            "eventType": self.event_type,
            "version": "0",
            "severity": "INFO",
            "displayMessage": self.event_type,
            "actor": {"id": "00uadmin", "type": "User", "alternateId": "admin@example.com"},
            "outcome": {"result": "SUCCESS", "reason": None},
            "target": [{"type": t, "id": i, "alternateId": a, "displayName": a} for t, i, a in self.targets],
        }


def okta_id(prefix: str, rnd: random.Random) -> str:
    """Okta ids: a 3-letter type prefix and 17 more base62 characters (20 in all)."""
    return prefix + "".join(rnd.choices(string.ascii_letters + string.digits, k=17))


@dataclass
class User:
    id: str
    status: str
    profile: dict[str, Any]
    created: str
    last_updated: str

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "created": self.created,
            "activated": self.created,
            "statusChanged": self.last_updated,
            "lastLogin": None,
            "lastUpdated": self.last_updated,
            "passwordChanged": None,
            "type": {"id": "otyfnjfba4ye7pgjB0g4"},
            "profile": dict(self.profile),
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": f"/api/v1/users/{self.id}"}},
        }


@dataclass
class Group:
    id: str
    name: str
    description: str
    created: str
    last_updated: str
    last_membership_updated: str
    members: set[str] = field(default_factory=set)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "lastUpdated": self.last_updated,
            "lastMembershipUpdated": self.last_membership_updated,
            "objectClass": ["okta:user_group"],
            "type": "OKTA_GROUP",
            "profile": {"name": self.name, "description": self.description},
            "_links": {"self": {"href": f"/api/v1/groups/{self.id}"}},
        }


@dataclass
class Assignment:
    """A user assigned to the SCIM app (an Okta "app user"): externalId is the SCIM id we returned."""

    user_id: str
    external_id: str | None = None
    status: str = "PROVISIONED"
    sync_state: str = "SYNCHRONIZED"
    created: str = field(default_factory=timestamp)
    last_updated: str = field(default_factory=timestamp)


@dataclass
class PushMapping:
    id: str
    source_group_id: str
    target_group_id: str | None = None
    status: str = "ACTIVE"
    created: str = field(default_factory=timestamp)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sourceGroupId": self.source_group_id,
            "targetGroupId": self.target_group_id,
            "status": self.status,
            "created": self.created,
            "lastUpdated": self.created,
            "lastPush": self.created,
            "errorSummary": None,
        }


# Okta profile attribute -> SCIM 2.0 Test App attribute (the app's default attribute mappings).
APP_PROFILE_MAPPING = {
    "firstName": "givenName",
    "lastName": "familyName",
    "email": "email",
    "displayName": "displayName",
    "title": "title",
    "department": "department",
    "costCenter": "costCenter",
    "employeeNumber": "employeeNumber",
    "organization": "organization",
    "division": "division",
    "employeeID": "employeeID",
}


@dataclass
class Org:
    app_id: str
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    assignments: dict[str, Assignment] = field(default_factory=dict)
    push_mappings: dict[str, PushMapping] = field(default_factory=dict)
    # Groups assigned to the app (Assignments tab: their members get the app), by id -> when.
    # Assigning a group does not push it: only Push Groups sends the group and its membership.
    group_assignments: dict[str, str] = field(default_factory=dict)
    rnd: random.Random = field(default_factory=lambda: random.Random(0))
    # The System Log: every change made through the methods below, in the order it happened.
    log: list[LogEvent] = field(default_factory=list)

    def record(self, event_type: str, *targets: tuple[str, str, str]) -> None:
        uuid = "".join(self.rnd.choices(string.hexdigits.lower()[:16], k=32))
        self.log.append(LogEvent(uuid, timestamp(), event_type, targets))

    def _user_target(self, user_id: str) -> tuple[str, str, str]:
        user = self.users.get(user_id)
        return ("User", user_id, str(user.profile.get("login", "")) if user else "")

    def _app_target(self) -> tuple[str, str, str]:
        return ("AppInstance", self.app_id, "SCIM 2.0 Test App (Header Auth)")

    def _group_target(self, group_id: str) -> tuple[str, str, str]:
        group = self.groups.get(group_id)
        return ("UserGroup", group_id, group.name if group else "")

    # --- queries the API serves ----------------------------------------------------------------

    def app_user(self, assignment: Assignment, expand: bool) -> dict[str, Any]:
        user = self.users[assignment.user_id]
        profile = {app: user.profile.get(okta) for okta, app in APP_PROFILE_MAPPING.items() if user.profile.get(okta)}
        body: dict[str, Any] = {
            "id": user.id,
            "externalId": assignment.external_id,
            "created": assignment.created,
            "lastUpdated": assignment.last_updated,
            "scope": "USER",
            "status": assignment.status,
            "statusChanged": assignment.last_updated,
            "passwordChanged": None,
            "syncState": assignment.sync_state,
            "lastSync": assignment.last_updated,
            "credentials": {"userName": user.profile["login"]},
            "profile": profile,
            "_links": {"user": {"href": f"/api/v1/users/{user.id}"}},
        }
        if expand:
            body["_embedded"] = {"user": user.to_api()}
        return body

    # --- changes (made "in Okta": the pusher decides whether they are pushed) ------------------

    def touch_user(self, user: User) -> None:
        user.last_updated = timestamp()

    def deactivate_user(self, user_id: str) -> None:
        user = self.users[user_id]
        user.status = "DEPROVISIONED"
        self.touch_user(user)
        self.record("user.lifecycle.deactivate", self._user_target(user_id))

    def suspend_user(self, user_id: str) -> None:
        user = self.users[user_id]
        user.status = "SUSPENDED"
        self.touch_user(user)
        self.record("user.lifecycle.suspend", self._user_target(user_id))

    def reactivate_user(self, user_id: str) -> None:
        user = self.users[user_id]
        user.status = "ACTIVE"
        self.touch_user(user)
        self.record("user.lifecycle.reactivate", self._user_target(user_id))

    def update_profile(self, user_id: str, **changes: Any) -> None:
        user = self.users[user_id]
        user.profile.update(changes)
        self.touch_user(user)
        self.record("user.account.update_profile", self._user_target(user_id))

    def unassign(self, user_id: str) -> None:
        """Unassigned from the app: the user's own lastUpdated does not move (the assignment is the
        app's), so only the System Log shows it."""
        if self.assignments.pop(user_id, None) is not None:
            self.record("application.user_membership.remove", self._app_target(), self._user_target(user_id))

    def add_user(self, **profile: Any) -> User:
        now = timestamp()
        user = User(okta_id("00u", self.rnd), "ACTIVE", profile, now, now)
        self.users[user.id] = user
        self.record("user.lifecycle.create", self._user_target(user.id))
        return user

    def add_group(self, name: str, description: str = "") -> Group:
        now = timestamp()
        group = Group(okta_id("00g", self.rnd), name, description, now, now, now)
        self.groups[group.id] = group
        self.record("group.lifecycle.create", self._group_target(group.id))
        return group

    def set_members(self, group_id: str, members: set[str]) -> None:
        group = self.groups[group_id]
        added, removed = set(members) - group.members, group.members - set(members)
        group.members = set(members)
        group.last_membership_updated = timestamp()
        for user_id in sorted(added):
            self.record("group.user_membership.add", self._user_target(user_id), self._group_target(group_id))
        for user_id in sorted(removed):
            self.record("group.user_membership.remove", self._user_target(user_id), self._group_target(group_id))

    def rename_group(self, group_id: str, name: str) -> None:
        group = self.groups[group_id]
        group.name = name
        group.last_updated = timestamp()
        self.record("group.profile.update", self._group_target(group_id))

    def assign(self, user_id: str) -> Assignment:
        """Assigned to the app (the user's lastUpdated does not move: only the System Log shows it)."""
        assignment = self.assignments.get(user_id)
        if assignment is None:
            assignment = Assignment(user_id)
            self.assignments[user_id] = assignment
            self.record("application.user_membership.add", self._app_target(), self._user_target(user_id))
        return assignment

    def assign_group(self, group_id: str) -> None:
        self.group_assignments.setdefault(group_id, timestamp())

    def unassign_group(self, group_id: str) -> None:
        self.group_assignments.pop(group_id, None)

    def app_group(self, group_id: str, priority: int) -> dict[str, Any]:
        """An "application group" as /api/v1/apps/{id}/groups lists it."""
        return {
            "id": group_id,
            "lastUpdated": self.group_assignments[group_id],
            "priority": priority,
            "profile": {},
            "_links": {"group": {"href": f"/api/v1/groups/{group_id}"}},
        }

    def push(self, group_id: str) -> PushMapping:
        existing = next((m for m in self.push_mappings.values() if m.source_group_id == group_id), None)
        if existing is not None:
            return existing
        mapping = PushMapping(okta_id("gPm", self.rnd), group_id)
        self.push_mappings[mapping.id] = mapping
        return mapping

    def unpush(self, group_id: str) -> None:
        for mapping_id, mapping in list(self.push_mappings.items()):
            if mapping.source_group_id == group_id:
                del self.push_mappings[mapping_id]

    # --- what is provisioned -------------------------------------------------------------------

    def provisioned_user_ids(self) -> list[str]:
        """Assigned users whose Okta status keeps them active in the app."""
        return [
            uid
            for uid, a in self.assignments.items()
            if self.users[uid].status in ACTIVE_USER_STATUSES and a.status in ("PROVISIONED", "ACTIVE")
        ]


def generate(users: int, groups: int, *, seed: int = 7, domain: str = "example.com") -> Org:
    """A reproducible org: every user assigned to the app, every group assigned and pushed."""
    rnd = random.Random(seed)
    org = Org(app_id=okta_id("0oa", rnd), rnd=rnd)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for i in range(users):
        given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
        login = f"{given.lower()}.{family.lower()}.{i}@{domain}"
        department = rnd.choice(DEPARTMENTS)
        created = timestamp(base + dt.timedelta(minutes=i))
        user = User(
            okta_id("00u", rnd),
            "ACTIVE",
            {
                "login": login,
                "email": login,
                "firstName": given,
                "lastName": family,
                "displayName": f"{given} {family}",
                "title": rnd.choice(TITLES),
                "department": department,
                "costCenter": f"CC-{100 + DEPARTMENTS.index(department)}",
                "employeeNumber": str(10000 + i),
                "organization": "Example Corp",
                "division": "R&D" if department in ("Engineering", "Research") else "GTM",
                "employeeID": f"{'C' if i % 10 == 0 else 'E'}-{i:06d}",
            },
            created,
            created,
        )
        org.users[user.id] = user
        org.assignments[user.id] = Assignment(user.id, created=created, last_updated=created)
    user_ids = list(org.users)
    for j in range(groups):
        if j < len(COLOURS):
            name = f"Bifrost Playground: {COLOURS[j]} Team"
        elif j < len(COLOURS) + len(DEPARTMENTS):
            name = f"Department: {DEPARTMENTS[j - len(COLOURS)]}"
        else:
            name = f"project-{j:05d}"
        created = timestamp(base)
        group = Group(okta_id("00g", rnd), name, f"Generated group {j}", created, created, created)
        if user_ids:
            size = min(len(user_ids), max(1, int(rnd.expovariate(1 / 12))))
            group.members = set(rnd.sample(user_ids, size))
        org.groups[group.id] = group
        org.assign_group(group.id)
        org.push(group.id)
    return org
