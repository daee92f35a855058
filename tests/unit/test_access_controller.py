"""The access controller against an in-memory writer: what it writes, refuses and removes."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from identity_operator.access.controller import AccessController, SubjectHashes
from identity_operator.access.plan import Directory, Principal, shard, subject_hash, subject_names
from identity_operator.records import AccessBindingRecord
from identity_operator.writer import MemoryWriter
from kubescim.api.models import AccessBindingSpec
from kubescim.kube import ApiError, Resource

pytestmark = pytest.mark.asyncio


class RefusingWriter(MemoryWriter):
    """The API server's answer to binding a role the operator may not bind."""

    async def apply(self, resource: Resource, body: Any, namespace: str | None = None) -> Any:
        raise ApiError(403, {"reason": "Forbidden", "message": "is attempting to grant RBAC permissions not held"})


class EchoingWriter(MemoryWriter):
    """The watch delivering each write before its response, as the API server's often does."""

    access: AccessController | None = None

    def echo(self, event_type: str, body: dict[str, Any]) -> None:
        assert self.access is not None
        self.access.rbac_event("RoleBinding", event_type, copy.deepcopy(body))

    async def apply(self, resource: Resource, body: Any, namespace: str | None = None) -> Any:
        stored = await super().apply(resource, body, namespace)
        self.echo("MODIFIED", stored)
        return stored

    async def delete(self, resource: Resource, name: str, uid: str, namespace: str | None = None) -> None:
        await super().delete(resource, name, uid, namespace)
        assert self.access is not None
        current = self.access.observed[("RoleBinding", namespace or "", name)]
        self.echo("DELETED", current)


def record(name: str, role: str = "edit", **spec: Any) -> AccessBindingRecord:
    body = {"subjects": {"teams": ["eng"]}, "roleRef": {"name": role}, "scope": {"namespaces": ["apps"]}, **spec}
    return AccessBindingRecord(name, f"uid-{name}", 1, AccessBindingSpec.model_validate(body), {})


def controller(writer: MemoryWriter, bindings: dict[str, AccessBindingRecord]) -> AccessController:
    directory = Directory(
        principals={"u1": Principal("u1", "okta:ada", "okta")},
        team_members={"eng": ["u1"]},
        unit_members={},
        role_holders={},
    )
    access = AccessController(
        writer,
        "kubescim",
        frozenset({"ClusterRole/edit", "ClusterRole/cluster-admin"}),
        bindings=lambda: bindings,
        directory=lambda: directory,
    )
    access.namespaces_listed([{"metadata": {"name": "apps"}}], "1")
    return access


def statuses(writer: MemoryWriter) -> list[dict[str, Any]]:
    return [payload for plural, _, payload in writer.of("status") if plural == "accessbindings"]


async def test_an_allowed_binding_is_applied_once_and_reports_ready() -> None:
    writer = MemoryWriter()
    access = controller(writer, {"eng-edit": record("eng-edit")})
    await access.reconcile("eng-edit")
    applied = writer.of("apply")
    assert [(plural, name) for plural, name, _ in applied] == [("rolebindings", "kubescim-eng-edit-0")]
    assert applied[0][2]["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "okta:ada"}]
    ready = statuses(writer)[-1]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("True", "Applied")
    await access.reconcile("eng-edit")  # nothing changed: nothing written
    assert len(writer.of("apply")) == 1


async def test_a_role_outside_the_allow_list_is_refused_and_its_objects_removed() -> None:
    writer = MemoryWriter()
    bindings = {"b": record("b")}
    access = controller(writer, bindings)
    await access.reconcile("b")
    bindings["b"] = record("b", role="admin")
    await access.reconcile("b")
    assert [(name, uid) for _, name, uid in writer.of("delete")] == [("kubescim-b-0", "uid-1001")]
    ready = statuses(writer)[-1]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "RoleNotAllowed")
    events = [payload for verb, _, _, payload in writer.calls if verb == "event"]
    assert events[-1][:2] == ("Warning", "RoleNotAllowed")


async def test_a_binding_the_api_server_refuses_says_forbidden() -> None:
    writer = RefusingWriter()
    access = controller(writer, {"b": record("b", role="cluster-admin", scope={"cluster": True})})
    await access.reconcile("b")
    ready = statuses(writer)[-1]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "Forbidden")
    assert "refused to bind ClusterRole 'cluster-admin'" in ready["message"]


async def test_a_deleted_binding_takes_its_objects_with_it() -> None:
    writer = MemoryWriter()
    bindings = {"b": record("b")}
    access = controller(writer, bindings)
    await access.reconcile("b")
    del bindings["b"]
    await access.reconcile("b")
    assert [name for _, name, _ in writer.of("delete")] == ["kubescim-b-0"]
    assert access.by_binding == {}


async def test_our_own_writes_coming_back_first_recompute_nothing_but_edits_by_others_do() -> None:
    writer = EchoingWriter()
    bindings = {"b": record("b")}
    access = writer.access = controller(writer, bindings)
    await access.reconcile("b")
    assert access.dirty == set()  # the echo of our create, before its response
    bindings["b"] = record("b", role="cluster-admin")  # roleRef is immutable: delete, then create
    await access.reconcile("b")
    assert [verb for verb, *_ in writer.calls if verb in ("apply", "delete")] == ["apply", "delete", "apply"]
    assert access.dirty == set()
    key = ("RoleBinding", "apps", "kubescim-b-0")
    edited = copy.deepcopy(access.observed[key])
    edited["subjects"] = []
    edited["metadata"]["resourceVersion"] = "10000"
    access.rbac_event("RoleBinding", "MODIFIED", edited)  # someone else's edit: restored
    assert access.dirty == {"b"}
    access.dirty.clear()
    edited["metadata"]["resourceVersion"] = "10001"
    access.rbac_event("RoleBinding", "DELETED", edited)  # someone else's delete: restored
    assert access.dirty == {"b"}
    access.dirty.clear()
    access.rbac_event("RoleBinding", "DELETED", edited)  # gone already: nothing to restore
    assert access.dirty == set()


async def test_nothing_is_computed_before_every_input_is_complete() -> None:
    access = controller(MemoryWriter(), {"b": record("b")})
    assert not access.ready  # the namespaces are listed; the engine and RBAC informers are not
    for source in ("engine", "rolebindings", "clusterrolebindings"):
        access.source_ready(source)
    assert access.ready
    assert access.dirty == {"b"}


async def test_remembered_subject_hashes_shard_exactly_like_the_hash_and_stay_bounded() -> None:
    subjects = sorted(("User", f"okta:user{i}@example.com") for i in range(3000))
    hashes = SubjectHashes(limit=1000)
    assert shard(subjects, 100, hashes) == shard(subjects, 100)  # the cache changes no object
    assert len(hashes) <= 1000  # emptied when full, not grown past its limit
    assert hashes("okta:ada") == subject_hash("okta:ada")


async def test_a_leaver_rewrites_only_their_shard_and_a_shared_username_keeps_its_access(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    principals = {f"u{i}": Principal(f"u{i}", f"okta:u{i}", "okta") for i in range(40)}
    principals["u40"] = Principal("u40", "okta:u39", "okta")  # a second account with u39's username
    team = {"eng": dict.fromkeys(principals)}

    def directory() -> Directory:
        holders: dict[str, list[str]] = {}
        for p in principals.values():
            holders.setdefault(p.username, []).append(p.user)
        return Directory(principals, team, {}, {}, holders=lambda name: holders.get(name, ()))

    writer = MemoryWriter()
    bindings = {"b": record("b")}
    access = AccessController(
        writer, "kubescim", frozenset({"ClusterRole/edit"}), lambda: bindings, directory, subjects_per_object=10
    )
    access.namespaces_listed([{"metadata": {"name": "apps"}}], "1")
    for source in ("engine", "rolebindings", "clusterrolebindings"):
        access.source_ready(source)
    access.start()
    try:
        await asyncio.sleep(0.2)
        assert len(writer.of("apply")) == 8  # 40 subjects in shards of at most 10
        bindings["b"] = record("b")  # our status write comes back from the watch as a new record

        def recomputed(*_: Any) -> Any:
            raise AssertionError("a user's own change recomputed the whole binding")

        monkeypatch.setattr("identity_operator.access.controller.subject_names", recomputed)
        del principals["u7"]  # deactivated
        access.mark(teams=["eng"], users={"u7": "okta:u7"})
        await asyncio.sleep(0.2)
        assert len(writer.of("apply")) == 9  # the leaver's shard, nothing else
        del principals["u40"]  # u39 still holds "okta:u39": nothing to revoke
        access.mark(teams=["eng"], users={"u40": "okta:u39"})
        await asyncio.sleep(0.2)
        assert len(writer.of("apply")) == 9
        assert statuses(writer)[-1]["subjectCount"] == 39
    finally:
        await access.stop()
    monkeypatch.undo()
    spec = record("b").spec
    assert spec is not None
    whole = shard(subject_names(spec, directory()), 10)
    assert sorted(access.observed_subjects.values()) == sorted(whole)
