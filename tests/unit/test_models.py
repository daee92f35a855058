"""Every example in crds/examples/ validates against the models and round-trips unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from kubescim.api import models

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "crds" / "examples").glob("*.yaml"))
SPECS: dict[str, type[BaseModel]] = {
    "IdentityProvider": models.IdentityProviderSpec,
    "ScimUser": models.ScimUserSpec,
    "ScimGroup": models.ScimGroupSpec,
    "TeamMapping": models.MappingSpec,
    "BusinessUnitMapping": models.MappingSpec,
    "Team": models.TeamSpec,
    "BusinessUnit": models.BusinessUnitSpec,
    "RoleMapping": models.RoleMappingSpec,
    "AccessBinding": models.AccessBindingSpec,
}


def test_there_is_an_example_of_every_kind() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in EXAMPLES}
    assert kinds == set(SPECS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_round_trips(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    model = SPECS[document["kind"]].model_validate(document["spec"])
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == document["spec"]
    # Frozen: specs are inputs.
    with pytest.raises(Exception):  # noqa: B017, PT011 - pydantic raises ValidationError for frozen instances
        model.__setattr__("priority", 1)
