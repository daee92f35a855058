"""The operator's ScimUser informer callbacks: the store before and after seeding, relists, pausing."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given
from hypothesis import strategies as st

from identity_operator.engine import Engine
from identity_operator.records import UserRecord, _pack, _unpack
from identity_operator.settings import OperatorSettings
from identity_operator.store import Store
from identity_operator.user_feed import UserFeed
from identity_operator.writer import MemoryWriter
from kubescim.kube import Kube, KubeConfig
from tests.unit.test_engine import RULE, TEAM, engine_with, user


def feed_for(engine: Engine, store: Store) -> UserFeed:
    return UserFeed(Kube(KubeConfig(server="http://unused.invalid")), "ns", store, engine)


async def test_before_the_seed_users_only_fill_the_store() -> None:
    engine, store, _ = engine_with()
    feed = feed_for(engine, store)
    feed.apply(user("ada", "Engineering"), deleted=False)
    assert "ada" in store.users
    assert not engine.dirty_users  # the engine recomputes everyone when it starts


async def test_after_the_seed_a_spec_change_is_queued_and_an_echo_of_our_own_write_is_not() -> None:
    engine, store, _ = engine_with(user("ada", "Engineering"))
    store.seeded.set()
    feed = feed_for(engine, store)
    feed.apply(user("ada", "Engineering", version=11, status={"teams": []}), deleted=False)  # same generation
    assert not engine.dirty_users
    changed = user("ada", "Sales", version=12)
    changed["metadata"]["generation"] = 2
    feed.apply(changed, deleted=False)
    assert engine.dirty_users == {"ada"}


async def test_a_relist_deletes_the_users_it_no_longer_holds() -> None:
    engine, store, _ = engine_with(user("ada", "Engineering"), user("bob", "Engineering"))
    store.seeded.set()
    feed = feed_for(engine, store)
    feed._relisted({"bob"}, "99")
    assert set(store.users) == {"bob"}
    assert engine.dirty_users == {"ada"}  # recomputed as gone: it leaves its teams


async def test_a_paused_engine_writes_nothing_until_it_is_active_again() -> None:
    store = Store()
    store.put_rule("Team", RULE)
    store.put_user(user("ada", "Engineering"))
    writer = MemoryWriter()
    engine = Engine(Kube(KubeConfig(server="http://unused.invalid")), OperatorSettings(namespace="ns"), write_to=writer)
    engine.active.clear()
    engine.start(store.view())
    try:
        await asyncio.sleep(0.3)
        assert writer.of("labels") == []
        engine.active.set()
        for _ in range(50):
            if writer.of("labels"):
                break
            await asyncio.sleep(0.05)
        assert writer.of("labels") == [("scimusers", "ada", {TEAM: "member"})]
    finally:
        await engine.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_what_the_store_packs_unpacks_to_the_same_value(value: object) -> None:
    assert _unpack(_pack(value)) == value


def test_a_typical_user_is_kept_in_a_fraction_of_its_json() -> None:
    body = user("ada", "Engineering", status={"id": "x", "teams": [], "conditions": []})
    record = UserRecord.from_body(body)
    assert len(record.spec_packed) < 0.6 * len(json.dumps(body["spec"], separators=(",", ":")))
    assert record.status == {"id": "x", "teams": [], "conditions": []}
