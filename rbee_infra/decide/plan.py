"""Pure decisions: which commit a source means, what changed, what a receipt says. No I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.base.redact import redact_url
from rbee_infra.base.wire import SETTINGS
from rbee_infra.config.fleet import GitSource
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide.facts import InstalledBinary, is_commit_id, parse_ls_remote

# Input properties whose change moves the install to another target: replace, not update.
REPLACE_PATHS = (
    ("connection", "host"),
    ("connection", "port"),
    ("connection", "user"),
    ("component",),
    ("workerType",),
)
# Input properties whose change needs a new build / binary.
# Inputs the engine drops when unset: gone from the news means unset, not unchanged.
OPTIONAL_INPUTS = ("queenUrl", "verify", "artifact")
REINSTALL_KEYS = (
    "source", "features", "binary", "cargo", "reinstallTrigger", "resolvedCommit", "build",
    "artifact",
)

IN_SYNC = "in-sync"
NOT_INSTALLED = "not-installed"
SERVICE_RUNNING = "running"


def install_id(spec: InstallSpec) -> str:
    """Stable per (stack, resource, target, name): a retried create finds its own earlier job."""
    c = spec.connection
    return layout.short_hash(
        spec.stack, spec.resource_name, c.host, str(c.port), c.user, spec.install_name
    )


def git_ref_names(source: GitSource) -> list[str]:
    if source.branch:
        return [f"refs/heads/{source.branch}"]
    if source.tag:
        # an annotated tag needs its peeled entry to name the commit
        return [f"refs/tags/{source.tag}", f"refs/tags/{source.tag}^{{}}"]
    return []


def pick_commit(source: GitSource, refs: dict[str, str]) -> str | None:
    if source.rev:
        return source.rev
    names = git_ref_names(source)
    return refs.get(names[0]) if names else None


def release_id(spec: InstallSpec, version_key: str, build_key: str | None = None) -> str:
    """The release dir's name. A binary shipped from a build elsewhere (`build_key`, by default
    the spec's artifact's) never shares the dir of one built on this host."""
    rid = layout.release_id(version_key, spec.features)
    if build_key is None and spec.artifact is not None and version_key == spec.artifact.commit:
        build_key = spec.artifact.key
    if build_key:
        rid += "-b" + build_key[:8]
    if spec.reinstall_trigger:
        rid += "-r" + layout.short_hash(spec.reinstall_trigger, length=6)
    return rid


def host_state(installed: InstalledBinary | None, my_install_id: str) -> str:
    """One word (or short phrase) on what the host holds for this resource."""
    if installed is None or installed.kind == "missing":
        owned = installed is not None and installed.receipt is not None
        return "binary missing" if owned else NOT_INSTALLED
    receipt = installed.receipt
    if receipt is None:
        return (
            "hand-made binary present" if installed.kind == "file" else "unmanaged binary present"
        )
    if receipt.get("installId") != my_install_id:
        return f"installed by another resource ({receipt.get('resource') or 'unknown'})"
    return installed.drift() or IN_SYNC


def public_props(props: dict[str, Any]) -> dict[str, Any]:
    """A resource's properties as the provider reads them: without the SDK's own
    (`__provider`), with `settings` spread out (state written before it existed is flat)."""
    public = {k: v for k, v in props.items() if not k.startswith("__") and k != SETTINGS}
    settings = props.get(SETTINGS)
    return {**settings, **public} if isinstance(settings, dict) else public


def _get(props: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def norm(value: Any) -> Any:
    """Floats that are whole numbers (ints cross the wire as floats) compare equal to ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


@dataclass(frozen=True)
class DiffDecision:
    changes: bool
    replaces: list[str]
    changed: list[str]
    reinstall: bool


def decide_diff(olds: dict[str, Any], news: dict[str, Any]) -> DiffDecision:
    """olds are the recorded outputs, news the checked inputs (both plain dicts)."""
    replaces = [
        ".".join(path)
        for path in REPLACE_PATHS
        if norm(_get(olds, path)) != norm(_get(news, path))
    ]
    keys = sorted(k for k in set(olds) | set(news) if not k.startswith("__"))
    # Without pruning, the hive's list of configured workers changes nothing on the host.
    # hostState/serviceState are observations: only a state that needs acting on counts.
    ignored = {"hostState", "serviceState"}
    ignored |= set() if news.get("pruneUnmanaged") else {"managedWorkers"}
    changed = [
        k
        for k in keys
        if (k in news or k in OPTIONAL_INPUTS)
        and k not in ignored
        and norm(olds.get(k)) != norm(news.get(k))
    ]
    state = news.get("hostState")
    drifted = state is not None and state != IN_SYNC
    if drifted and "hostState" not in changed:
        changed.append("hostState")
    service = news.get("serviceState")
    if service is not None and service != SERVICE_RUNNING:
        changed.append("serviceState")  # the hive is to run: restart it, no rebuild
    reinstall = bool(replaces) or drifted or any(k in REINSTALL_KEYS for k in changed)
    return DiffDecision(
        changes=bool(changed or replaces), replaces=replaces, changed=changed, reinstall=reinstall
    )


def source_display(spec: InstallSpec) -> dict[str, Any]:
    """The source as it may be shown and stored in plain text (credentials removed)."""
    data = spec.source.model_dump(by_alias=True, exclude_none=True)
    for key in ("repo", "baseUrl"):
        if key in data:
            data[key] = redact_url(data[key])
    return data


def receipt(
    spec: InstallSpec,
    *,
    iid: str,
    rid: str,
    commit: str,
    version: str,
    sha256: str,
    installed_at: str,
    verified_by: str,
    version_line: str = "",
    cargo_lock: str = "",
) -> str:
    """The JSON left on the host; one line, keys sorted (REMOVE greps `"installId": "<id>"`).
    `verifiedBy` is the check the binary passed (see `verify`); `versionOutput` the line
    `--version` answered, when it did."""
    data = {
        "installId": iid,
        "name": spec.install_name,
        "component": spec.component,
        "workerType": spec.worker_type,
        "binary": spec.binary,
        "source": source_display(spec),
        "commit": commit,
        "features": spec.features,
        "releaseId": rid,
        "version": version,
        "verifiedBy": verified_by,
        "sha256": sha256,
        "installedAt": installed_at,
        "stack": spec.stack,
        "resource": spec.resource_name,
        **_built_by(spec),
    }
    if version_line:
        data["versionOutput"] = version_line
    if cargo_lock:
        data["cargoLockSha256"] = cargo_lock  # the dependency graph it was built with
    return json.dumps(data, sort_keys=True)


def _built_by(spec: InstallSpec) -> dict[str, Any]:
    """Where a git install was built, and the cache key of a shipped build."""
    if spec.source.method != "git":
        return {}
    if spec.build is None or spec.artifact is None:
        return {"builtOn": "host"}
    return {"builtOn": spec.build.label, "buildKey": spec.artifact.key}


def resolve_summary(source: GitSource) -> str:
    return f"git ls-remote of {source.ref_kind} {source.ref!r}"


def commit_in_listing(spec: InstallSpec, listing: str) -> str:
    """The commit the spec's ref names in `git ls-remote` output made on its host."""
    source = spec.source
    assert isinstance(source, GitSource)
    return commit_of(source, spec.label, listing)


def commit_of(source: GitSource, label: str, listing: str) -> str:
    """The commit `source`'s ref names in `git ls-remote` output (made on the host that builds,
    or on this machine for a build here), or the resolve error naming `label`. The one place a
    listing becomes a commit: only a full commit id is accepted, whatever the listing says (it
    becomes a release id, a path, and what gets built)."""
    commit = pick_commit(source, parse_ls_remote(listing))
    where = redact_url(source.repo)
    if commit is None:
        raise HostError(label, "resolve", f"{source.ref_kind} {source.ref!r} not found in {where}")
    if not source.rev and not is_commit_id(commit):
        raise HostError(
            label,
            "resolve",
            f"git ls-remote named {commit[:80]!r} for {source.ref_kind} {source.ref!r} in "
            f"{where}, which is not a commit id (40 hex digits); refusing it",
        )
    return commit
