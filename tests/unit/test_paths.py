"""Request paths as administrators type base URLs."""

from __future__ import annotations

import pytest

from scim_gateway.paths import normalize


@pytest.mark.parametrize(
    ("typed", "routed"),
    [
        ("/scim/v2//Users", "/scim/v2/Users"),
        ("/scim/v2/Users/", "/scim/v2/Users"),
        ("//scim//v2///Groups/abc/", "/scim/v2/Groups/abc"),
        ("/providers/okta/scim/v2//ServiceProviderConfig", "/providers/okta/scim/v2/ServiceProviderConfig"),
        ("/", "/"),
        ("/scim/v2/Users", "/scim/v2/Users"),
    ],
)
def test_slashes_collapse_and_a_trailing_one_goes(typed: str, routed: str) -> None:
    assert normalize(typed) == routed
