"""Names shared by the gateway, the operator, the CLI and the chart: API group, label keys, annotations.

Label keys are the contract for membership (docs/design.md, Storage): a user's group, team and
business-unit memberships are labels on the ScimUser, so `kubectl get scimusers -l KEY` lists
a group/team/BU of any size, and concurrent membership writes touch different keys.
"""

from __future__ import annotations

from typing import Final

from kubescim.resource import Resource

GROUP: Final = "identity.kubescim.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

IDENTITY_PROVIDERS: Final = Resource(GROUP, VERSION, "identityproviders")
SCIM_USERS: Final = Resource(GROUP, VERSION, "scimusers")
SCIM_GROUPS: Final = Resource(GROUP, VERSION, "scimgroups")
TEAM_MAPPINGS: Final = Resource(GROUP, VERSION, "teammappings")
BUSINESS_UNIT_MAPPINGS: Final = Resource(GROUP, VERSION, "businessunitmappings")
TEAMS: Final = Resource(GROUP, VERSION, "teams")
BUSINESS_UNITS: Final = Resource(GROUP, VERSION, "businessunits")
ROLE_MAPPINGS: Final = Resource(GROUP, VERSION, "rolemappings")
ACCESS_BINDINGS: Final = Resource(GROUP, VERSION, "accessbindings")
ROLE_BINDINGS: Final = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
CLUSTER_ROLE_BINDINGS: Final = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", namespaced=False)

# --- labels on ScimUser / ScimGroup -------------------------------------------------------------
LABEL_PROVIDER: Final = f"{GROUP}/provider"
LABEL_SCIM_ID: Final = f"{GROUP}/scim-id"
LABEL_ACTIVE: Final = f"{GROUP}/active"
# The user's one role (RoleMapping), written by the operator: kubectl get scimusers -l identity.kubescim.dev/role=admin
LABEL_ROLE: Final = f"{GROUP}/role"
# Prefixes: the label key's name part is the group's SCIM id / the team's or BU's object name.
GROUP_LABEL_PREFIX: Final = f"group.{GROUP}/"
TEAM_LABEL_PREFIX: Final = f"team.{GROUP}/"
BUSINESS_UNIT_LABEL_PREFIX: Final = f"businessunit.{GROUP}/"

# --- labels on Team / BusinessUnit --------------------------------------------------------------
LABEL_CREATED_BY: Final = f"{GROUP}/created-by"
CREATED_BY_OPERATOR: Final = "kubescim-operator"

# --- labels on the RoleBindings / ClusterRoleBindings an AccessBinding is made of ------------------
# The AccessBinding's name and namespace (two labels: a label value holds at most 63 characters).
LABEL_ACCESS_BINDING: Final = f"{GROUP}/access-binding"
LABEL_ACCESS_BINDING_NAMESPACE: Final = f"{GROUP}/access-binding-namespace"
LABEL_SHARD: Final = f"{GROUP}/shard"

# --- annotations --------------------------------------------------------------------------------
ANNOTATION_LAST_MODIFIED: Final = f"{GROUP}/last-modified"
# On a ScimGroup: the resourceVersion of its latest membership label write. A gateway replica answers
# with the group's members (or changes them) only once its watch-fed cache has seen that revision.
ANNOTATION_MEMBERS_REVISION: Final = f"{GROUP}/members-revision"
# On a renamed user's new object: "<old object name>/<old uid>", so every cache buries the old one.
ANNOTATION_RENAMED_FROM: Final = f"{GROUP}/renamed-from"
ANNOTATION_SYNC_REQUESTED: Final = f"{GROUP}/sync-requested"
ANNOTATION_FULL_SYNC_REQUESTED: Final = f"{GROUP}/full-sync-requested"
ANNOTATION_ALLOW_MASS_DEACTIVATION: Final = f"{GROUP}/allow-mass-deactivation"

# --- common app.kubernetes.io labels ------------------------------------------------------------
PART_OF: Final = {"app.kubernetes.io/part-of": "kubescim"}
MANAGED_BY_GATEWAY: Final = {"app.kubernetes.io/managed-by": "kubescim-gateway"}
MANAGED_BY_OPERATOR: Final = {"app.kubernetes.io/managed-by": "kubescim-operator"}

ENTERPRISE_USER_URN: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
