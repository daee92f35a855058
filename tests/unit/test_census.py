"""The attribute census: a rule reading what no user carries says so, and near misses are named."""

from __future__ import annotations

from identity_operator.census import AttributeCensus, attribute_keys
from kubescim.constants import ENTERPRISE_USER_URN
from kubescim.matching import compile_attribute

ACME = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"


def census_of(*specs: dict[str, object], provider: str = "okta") -> AttributeCensus:
    census = AttributeCensus()
    for spec in specs:
        census.add(provider, attribute_keys(spec), 1)
    return census


def check(census: AttributeCensus, path: str, providers: list[str] | None = None) -> tuple[str, str]:
    result = census.check("contractors", providers, compile_attribute(path).attr)
    return result.verdict, result.message


def test_what_users_carry_is_found_and_what_they_do_not_is_named() -> None:
    users = [{"userName": f"u{i}", "extensions": {ENTERPRISE_USER_URN: {"employeeId": f"E{i}"}}} for i in range(42)]
    census = census_of(*users, {"userName": "x", "title": "Boss", "extensions": {ACME: {"badge": "B"}}})
    assert check(census, "title") == ("Found", "1 user(s) carry title")
    verdict, message = check(census, "employeeID")
    assert verdict == "CaseMismatch"
    assert "rule contractors reads employeeID; 42 user(s) carry employeeId" in message
    verdict, message = check(census, f"{ACME}:employeeId")
    assert verdict == "NearMiss"
    assert f"42 user(s) carry employeeId under {ENTERPRISE_USER_URN}" in message
    assert check(census, "favouriteColour")[0] == "NotCarried"
    assert check(census, "badge", ["entra"])[0] == "NotCarried"  # only okta's users carry it
    assert check(census, f"{ACME}:badge")[0] == "Found"


def test_counts_follow_users_and_the_version_moves_only_when_attributes_come_or_go() -> None:
    census = AttributeCensus()
    spec: dict[str, object] = {"userName": "a", "title": "x"}
    census.add("okta", attribute_keys(spec), 1)
    version = census.version
    census.add("okta", attribute_keys({"userName": "b", "title": "y"}), 1)
    assert census.version == version  # same attributes, more carriers
    census.add("okta", attribute_keys(spec), -1)
    census.add("okta", attribute_keys({"userName": "b", "title": "y"}), -1)
    assert census.counts == {}
    assert census.version > version
    assert attribute_keys({"userName": "a", "title": "x"}) is attribute_keys({"title": "y", "userName": "b"})
