"""A small evaluator of IAM policy documents, and the trust-chain questions issue 15 asks of them.

It answers "would AWS allow this request?" for identity policies plus an optional permissions
boundary, the way IAM's documented evaluation logic does for one account: an explicit Deny in any
policy wins; otherwise an Allow is needed in the identity policies AND (with a boundary) in the
boundary. Action, NotAction, Resource, NotResource with ``*``/``?`` wildcards, and the condition
operators the stack's policies use (String*, Arn*, Bool, Null, ForAnyValue:/ForAllValues:, ...IfExists)
with AWS's rules for a key missing from the request (plain operators: false; negated: true).

Not modelled: resource policies, SCPs, session policies, policy variables. The questions below are
only asked of what those cannot widen (an identity policy + boundary is an upper bound).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def glob_match(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    return bool(_pattern(glob, ignore_case).match(value))


def document(policy) -> dict:
    """A policy document from a JSON string, a URL-encoded string (IAM's API) or a dict."""
    if isinstance(policy, dict):
        return policy
    from urllib.parse import unquote

    text = policy if policy.lstrip().startswith("{") else unquote(policy)
    return json.loads(text)


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: dict = field(default_factory=dict)

    def value(self, key: str):
        for k, v in self.context.items():
            if k.lower() == key.lower():
                return v
        return None


_NEGATED = ("StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike",
            "NumericNotEquals")


def _compare(base: str, expected: str, actual: str) -> bool:
    if base in ("StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals"):
        return expected == actual
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return expected.lower() == actual.lower()
    if base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike"):
        return glob_match(expected, actual)
    if base == "Bool":
        return expected.lower() == str(actual).lower()
    raise NotImplementedError(f"condition operator {base}")


def condition_holds(condition: dict, request: Request) -> bool:
    for operator, pairs in condition.items():
        qualifier, _, op = operator.rpartition(":")
        if_exists = op.endswith("IfExists")
        base = op[: -len("IfExists")] if if_exists else op
        for key, expected in pairs.items():
            expected = [str(e) for e in _as_list(expected)]
            actual = request.value(key)
            if base == "Null":
                if (actual is None) != (expected[0].lower() == "true"):
                    return False
                continue
            if actual is None:
                if if_exists or base in _NEGATED or qualifier == "ForAllValues":
                    continue
                return False
            values = [str(v) for v in _as_list(actual)]
            negated = base in _NEGATED
            if qualifier == "ForAnyValue":
                ok = any(any(_compare(base, e, v) for e in expected) != negated for v in values)
            elif qualifier == "ForAllValues":
                ok = all(any(_compare(base, e, v) for e in expected) != negated for v in values)
            else:
                hit = any(_compare(base, e, v) for e in expected for v in values)
                ok = not hit if negated else hit
            if not ok:
                return False
    return True


def statement_applies(statement: dict, request: Request) -> bool:
    if "Action" in statement:
        if not any(glob_match(a, request.action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(glob_match(a, request.action, ignore_case=True) for a in _as_list(statement.get("NotAction"))):
        return False
    if "Resource" in statement:
        if not any(glob_match(r, request.resource) for r in _as_list(statement["Resource"])):
            return False
    elif any(glob_match(r, request.resource) for r in _as_list(statement.get("NotResource"))):
        return False
    return condition_holds(statement.get("Condition") or {}, request)


def _statements(policies) -> list[dict]:
    return [s for p in policies for s in _as_list(document(p).get("Statement"))]


def allowed(policies, request: Request, boundary=None) -> bool:
    """Would IAM allow ``request`` for a principal with these identity policies (and boundary)?"""
    statements = _statements(policies)
    fence = _statements([boundary]) if boundary is not None else []
    if any(s["Effect"] == "Deny" and statement_applies(s, request) for s in statements + fence):
        return False
    if not any(s["Effect"] == "Allow" and statement_applies(s, request) for s in statements):
        return False
    return boundary is None or any(s["Effect"] == "Allow" and statement_applies(s, request) for s in fence)


# ---- the questions -----------------------------------------------------------------------


@dataclass
class Stack:
    """What the attacker's requests are about: one env, and a neighbour whose names begin with it."""

    account: str
    region: str
    app: str
    env: str
    boundary_arn: str
    key_tag: tuple[str, str]
    secure_parameters: list[str]

    @property
    def prefix(self) -> str:
        return f"{self.app}-{self.env}"

    def role(self, name: str, env: str | None = None, *, path: bool = True) -> str:
        env = env or self.env
        where = f"{self.app}/{env}/" if path else ""
        return f"arn:aws:iam::{self.account}:role/{where}{self.app}-{env}-{name}"

    def key(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"

    def parameter(self, name: str) -> str:
        return f"arn:aws:ssm:{self.region}:{self.account}:parameter{name}"


ROLE_WRITES = ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary",
               "iam:DeleteRolePolicy", "iam:DetachRolePolicy")
KEY_ADMIN = ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:Decrypt", "kms:Encrypt", "kms:TagResource",
             "kms:CreateGrant", "kms:DisableKey")


def apply_role_findings(policies, stack: Stack) -> list[str]:
    """Every request the CI apply role must NOT be allowed, that it is; plus what it must still do."""
    out: list[str] = []
    neighbour = f"{stack.env}-eu"  # <app>-<env>-* also matched <app>-<env>-eu-*
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    own_role = stack.role("users")
    targets = {
        "own path": own_role,
        "own name prefix, default path": stack.role("x", path=False),
        "neighbour env (path)": stack.role("users", neighbour),
        "neighbour env (name prefix)": stack.role("users", neighbour, path=False),
        "CI apply role": f"arn:aws:iam::{stack.account}:role/{stack.prefix}-github-apply",
    }
    for action in ROLE_WRITES:
        for label, arn in targets.items():
            for ctx_label, ctx in (("no boundary", {}),
                                   ("another boundary", {"iam:PermissionsBoundary": admin})):
                if allowed(policies, Request(action, arn, ctx)):
                    out.append(f"apply role may {action} on {label} ({arn}) with {ctx_label}")
        for label in ("neighbour env (path)", "neighbour env (name prefix)", "CI apply role"):
            arn = targets[label]
            if allowed(policies, Request(action, arn, {"iam:PermissionsBoundary": stack.boundary_arn})):
                out.append(f"apply role may {action} on {label} ({arn}) even with the env's boundary")
    for label in ("neighbour env (path)", "neighbour env (name prefix)", "CI apply role"):
        # reading its own role is refresh; reading a neighbour's is not
        reads = ("iam:GetRolePolicy",) if label != "CI apply role" else ()
        for action in ("iam:UpdateAssumeRolePolicy", "iam:DeleteRole", "iam:UpdateRole", *reads):
            if allowed(policies, Request(action, targets[label])):
                out.append(f"apply role may {action} on {label}")
    if allowed(policies, Request("iam:DeleteRolePermissionsBoundary", own_role)):
        out.append("apply role may remove a role's boundary")
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy",
                   "iam:DeletePolicyVersion"):
        if allowed(policies, Request(action, stack.boundary_arn)):
            out.append(f"apply role may {action} on the boundary policy")
    for label in ("neighbour env (path)", "neighbour env (name prefix)", "own name prefix, default path"):
        if allowed(policies, Request("iam:PassRole", targets[label], {"iam:PassedToService": "lambda.amazonaws.com"})):
            out.append(f"apply role may pass {label} to Lambda")
    if allowed(policies, Request("iam:PassRole", own_role, {"iam:PassedToService": "ec2.amazonaws.com"})):
        out.append("apply role may pass the env's roles to EC2")
    tag_key, tag_value = stack.key_tag
    for label, ctx in (("an untagged key", {}), ("another env's key", {f"aws:ResourceTag/{tag_key}": f"{stack.app}-other"})):
        for action in KEY_ADMIN:
            if allowed(policies, Request(action, stack.key("00000000-0000-0000-0000-00000000beef"), ctx)):
                out.append(f"apply role may {action} on {label}")
    if allowed(policies, Request("kms:CreateKey", "*", {f"aws:RequestTag/{tag_key}": tag_value})):
        out.append("apply role may create keys")
    # what it must still do (otherwise the checks above could pass on a role that can do nothing)
    own_key = {f"aws:ResourceTag/{tag_key}": tag_value}
    musts = [
        Request("iam:CreateRole", own_role, {"iam:PermissionsBoundary": stack.boundary_arn}),
        Request("iam:PutRolePolicy", own_role, {"iam:PermissionsBoundary": stack.boundary_arn}),
        Request("iam:PassRole", own_role, {"iam:PassedToService": "lambda.amazonaws.com"}),
        Request("kms:ScheduleKeyDeletion", stack.key("11111111-2222-3333-4444-555555555555"), own_key),
        Request("kms:PutKeyPolicy", stack.key("11111111-2222-3333-4444-555555555555"), own_key),
    ]
    for req in musts:
        if not allowed(policies, req):
            out.append(f"apply role can no longer {req.action} on {req.resource} {req.context}")
    return out


def plan_role_findings(policies, stack: Stack, key_arn: str) -> list[str]:
    """A pull request's credentials: read-only, and never a SecureString's value."""
    out: list[str] = []
    region = stack.region
    for via in (None, f"ssm.{region}.amazonaws.com", f"secretsmanager.{region}.amazonaws.com"):
        for key in (key_arn, stack.key("aws-ssm-managed-key")):
            ctx = {"kms:ViaService": via} if via else {}
            if allowed(policies, Request("kms:Decrypt", key, ctx)):
                out.append(f"plan role may kms:Decrypt {key} via {via or 'a direct call'}")
    for name in stack.secure_parameters:
        for action in ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory", "ssm:GetParametersByPath"):
            if allowed(policies, Request(action, stack.parameter(name))):
                out.append(f"plan role may {action} on the SecureString {name}")
    for action in ROLE_WRITES + ("iam:PassRole", "lambda:UpdateFunctionCode", "kms:PutKeyPolicy", "ssm:PutParameter",
                                 "s3:PutObject"):
        for resource in (stack.role("users"), stack.key("x"), f"arn:aws:lambda:{region}:{stack.account}:function:{stack.prefix}-users",
                         stack.parameter(f"/{stack.env}/{stack.app}/page-size")):
            if allowed(policies, Request(action, resource, {"iam:PermissionsBoundary": stack.boundary_arn})):
                out.append(f"plan role may {action} on {resource}")
    if not allowed(policies, Request("kms:Decrypt", key_arn, {"kms:ViaService": f"lambda.{region}.amazonaws.com"})):
        out.append("plan role can no longer read the functions' environments (refresh needs it)")
    for resource in (stack.role("users"), f"arn:aws:iam::{stack.account}:role/{stack.prefix}-github-apply"):
        if not allowed(policies, Request("iam:GetRolePolicy", resource)):
            out.append(f"plan role can no longer refresh the role {resource}")
    if allowed(policies, Request("iam:GetRolePolicy", stack.role("users", f"{stack.env}-eu", path=False))):
        out.append("plan role may read another env's roles")
    return out


def role_findings(name: str, policies, boundary, stack: Stack) -> list[str]:
    """A role the stack created (function role, API Gateway logs role): capped by the boundary."""
    out: list[str] = []
    if boundary is None:
        return [f"role {name} carries no permissions boundary"]
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:PassRole", "iam:AttachRolePolicy",
                   "sts:AssumeRole", "organizations:LeaveOrganization"):
        if allowed(policies, Request(action, stack.role("x")), boundary):
            out.append(f"role {name} may {action}")
    tag_key, _ = stack.key_tag
    if allowed(policies, Request("kms:Decrypt", stack.key("00000000-0000-0000-0000-00000000beef"),
                                 {f"aws:ResourceTag/{tag_key}": f"{stack.app}-other"}), boundary):
        out.append(f"role {name} may decrypt with another key")
    return out


def boundary_findings(boundary) -> list[str]:
    """The boundary itself allows nothing in iam:*, sts:AssumeRole* or organizations:*."""
    out = []
    for action in ("iam:CreateRole", "iam:PassRole", "iam:PutRolePolicy", "iam:CreatePolicyVersion",
                   "sts:AssumeRole", "organizations:CreateAccount"):
        if allowed([boundary], Request(action, "*")) or allowed([boundary], Request(action, "arn:aws:iam::1:role/x")):
            out.append(f"the boundary allows {action}")
    for s in _statements([boundary]):
        if s["Effect"] == "Allow":
            for a in _as_list(s.get("Action")):
                if a.lower().startswith(("iam:", "sts:", "organizations:")) or a == "*":
                    out.append(f"the boundary's {s.get('Sid')} allows {a}")
            if "NotAction" in s:
                out.append(f"the boundary's {s.get('Sid')} uses NotAction")
    return out


# ---- a maintained analyzer on the same documents ----------------------------------------------

CLOUDSPLAINING_RISKS = ("PrivilegeEscalation", "ResourceExposure", "CredentialsExposure", "DataExfiltration",
                        "ServiceWildcard")


def cloudsplaining_findings(authorization_details: dict) -> dict[str, dict[str, list]]:
    """Run cloudsplaining (offline) on a GetAccountAuthorizationDetails document.

    Returns {policy name: {risk: [what it flagged]}} for every inline or customer-managed policy with
    a finding (each risk of cloudsplaining's results is {"severity", "description", "findings"}). cloudsplaining looks at what a policy allows without resource constraints (Resource
    "*"), ignoring conditions: it is a second, independent reading, not a replacement for the
    questions above (which do evaluate resources, conditions and the boundary).
    """
    from cloudsplaining.scan.authorization_details import AuthorizationDetails

    details = json.loads(json.dumps(authorization_details, default=str))
    results = AuthorizationDetails(details).results
    out: dict[str, dict[str, list]] = {}
    for kind in ("inline_policies", "customer_managed_policies"):
        for policy in (results.get(kind) or {}).values():
            risks = {risk: (policy.get(risk) or {}).get("findings") for risk in CLOUDSPLAINING_RISKS}
            risks = {risk: found for risk, found in risks.items() if found}
            if risks:
                out[policy.get("PolicyName") or policy.get("policy_name") or str(policy)[:60]] = risks
    return out
