"""A group's recorded members revision, the real API server deciding: it only ever grows, however
late another replica's write arrives, so every replica keeps waiting for the newest membership
write before it answers from its cache."""

from __future__ import annotations

import uuid

from kubescim.api.models import ScimGroupSpec
from kubescim.constants import ANNOTATION_LAST_MODIFIED, ANNOTATION_MEMBERS_REVISION, SCIM_GROUPS
from kubescim.kube import Kube
from scim_gateway.index import Index
from scim_gateway.store import KubeStore
from tests.conftest import Cluster


async def recorded(kube: Kube, namespace: str, name: str) -> str | None:
    group = await kube.get(SCIM_GROUPS, name, namespace)
    annotations: dict[str, str] = group["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION_MEMBERS_REVISION)


async def test_a_late_lower_members_revision_never_replaces_a_higher_one(
    crds: Cluster, kube: Kube, namespace: str
) -> None:
    # Two replicas, each with its own cache.
    first = KubeStore(kube, namespace, Index(ANNOTATION_LAST_MODIFIED))
    second = KubeStore(kube, namespace, Index(ANNOTATION_LAST_MODIFIED))
    created = await first.create_group(ScimGroupSpec(provider="okta", display_name="g"), uuid.uuid4().hex)
    read_by_second = await second.fetch_group("okta", created.scim_id)
    assert read_by_second is not None
    assert read_by_second.members_revision == 0

    await first.bump_group(created, 500)  # the first replica's labels were written at revision 500
    # The second replica's labels were written earlier (300); its bump, built on what it read before
    # the first one's, lands late. It must keep 500: readers wait for the newest labels.
    entry = await second.bump_group(read_by_second, 300)
    assert await recorded(kube, namespace, created.object_name) == "500"
    assert entry.members_revision == 500

    stale = await first.fetch_group("okta", created.scim_id)
    assert stale is not None
    await second.bump_group(entry, 900)
    before = await kube.get(SCIM_GROUPS, created.object_name, namespace)
    # The compare-and-set against 500 fails; the re-read shows 900, whose bump came after the
    # labels of 700: that covers them, and nothing more is written.
    covered = await first.bump_group(stale, 700)
    assert covered.members_revision == 900
    after = await kube.get(SCIM_GROUPS, created.object_name, namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert await recorded(kube, namespace, created.object_name) == "900"

    await first.bump_group(stale, 1200)  # a higher one is recorded whatever the caller read
    assert await recorded(kube, namespace, created.object_name) == "1200"
