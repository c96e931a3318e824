"""How status judges what it found on a host against the config (pure): each component's
state and drift, the hive's service, its extras, the summary and exit code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.config.fleet import (
    GitSource,
    HiveConfig,
    ReleaseSource,
)
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import plan, verify
from rbee_infra.decide.extras import SHOWN_PREFIX
from rbee_infra.decide.facts import BuildJob, HostFacts, InstalledBinary
from rbee_infra.host import service
from rbee_infra.status.model import (
    Build,
    ComponentStatus,
    Desired,
    Extra,
    HiveStatus,
    Installed,
    ServiceStatus,
    Summary,
)

JSON_RECEIPT = ".json"


def desired_ref(spec: InstallSpec) -> str | None:
    if isinstance(spec.source, GitSource):
        return spec.source.ref
    if isinstance(spec.source, ReleaseSource):
        return spec.source.tag
    return None


def describe_source(source: dict[str, Any] | None) -> str:
    if not source:
        return "unknown source"
    method = source.get("method")
    if method == "git":
        kind = next((k for k in ("tag", "rev", "branch") if source.get(k)), "branch")
        return f"git {source.get('repo')} {kind} {source.get(kind, 'main')}"
    if method == "release":
        return f"release {source.get('repo')} tag {source.get('tag')}"
    if method == "local":
        return f"local {source.get('path')}"
    return str(method)


# --- what the host said ------------------------------------------------------------------


def extra_names(paths: Iterable[str]) -> dict[str, list[str]]:
    """Group extras (home-relative paths) by install name: `rbee-worker-metal` -> its paths."""
    grouped: dict[str, list[str]] = {}
    for path in paths:
        name = path.rsplit("/", 1)[-1].removesuffix(JSON_RECEIPT)
        grouped.setdefault(name, []).append(path)
    return dict(sorted(grouped.items()))


# --- the assessment (pure) ---------------------------------------------------------------


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def installed_view(
    installed: InstalledBinary | None,
    checked: verify.Report | None,
    verdict: verify.Verdict | None,
) -> Installed | None:
    if installed is None or installed.kind == "missing":
        return None
    receipt = installed.receipt or {}
    version = checked.run(verify.VERSION) if checked is not None else None
    features = receipt.get("features")
    verified_by = receipt.get("verifiedBy")
    return Installed(
        kind=installed.kind,
        managed=installed.receipt is not None,
        sha256=installed.sha256,
        version_output=verify.first_line(version.output) if version is not None else None,
        version_exit=version.exit_status if version is not None else None,
        check=verdict.passed if verdict is not None else None,
        verified_by=verified_by if isinstance(verified_by, str) else None,
        built_on=_text(receipt.get("builtOn")),
        build_key=_text(receipt.get("buildKey")),
        commit=receipt.get("commit"),
        version=receipt.get("version"),
        features=list(features) if isinstance(features, list) else None,
        source=receipt.get("source") if isinstance(receipt.get("source"), dict) else None,
        release_id=receipt.get("releaseId"),
        installed_at=receipt.get("installedAt"),
        stack=receipt.get("stack"),
        resource=receipt.get("resource"),
    )


def _verdict(spec: InstallSpec, checked: verify.Report | None) -> verify.Verdict | None:
    """The binary's check, judged as an install judges it (None: not run)."""
    if checked is None or not checked.runs:
        return None
    return verify.judge(spec.binary, checked, spec.verify)


def _receipt_drift(spec: InstallSpec, receipt: dict[str, Any], commit: str | None) -> list[str]:
    drift: list[str] = []
    wanted = plan.source_display(spec)
    if receipt.get("source") != wanted:
        drift.append(
            f"source changed: config wants {describe_source(wanted)}, "
            f"installed from {describe_source(receipt.get('source'))}"
        )
    elif commit and receipt.get("commit") != commit:
        installed = str(receipt.get("commit"))[:12]
        if isinstance(spec.source, GitSource):
            drift.append(
                f"new commit: {desired_ref(spec)} is now at {commit[:12]}, installed {installed}"
            )
        else:
            drift.append(
                f"new binary: the source now has sha256 {commit[:12]}, installed {installed}"
            )
    if receipt.get("features") != spec.features:
        drift.append(
            f"features changed: config wants [{', '.join(spec.features)}], "
            f"installed [{', '.join(receipt.get('features') or [])}]"
        )
    elif receipt.get("binary") != spec.binary:
        installed = receipt.get("binary")
        drift.append(f"binary changed: config wants {spec.binary}, installed {installed}")
    elif receipt.get("commit") and receipt.get("releaseId") != plan.release_id(
        spec, str(receipt["commit"]), _text(receipt.get("buildKey"))
    ):
        drift.append("reinstall trigger changed")
    return drift


def _version_drift(verdict: verify.Verdict | None, receipt: dict[str, Any] | None) -> list[str]:
    if verdict is None:
        return []
    if not verdict.ok:
        return [f"the binary does not run: {verdict.summary()}"]
    recorded = verify.recorded_version_line(receipt) if receipt is not None else None
    if verdict.passed == verify.VERSION and recorded and verdict.version_line != recorded:
        return [f"`--version` says {verdict.version_line!r}, the receipt recorded {recorded!r}"]
    return []


def assess(
    spec: InstallSpec,
    installed: InstalledBinary | None,
    checked: verify.Report | None,
    *,
    commit: str | None,
    stack_known: bool,
    error: str | None = None,
) -> ComponentStatus:
    """One component's state. Without a stack (hives.conf mode) any stack's receipt counts."""
    receipt = installed.receipt if installed is not None else None
    stack = spec.stack if stack_known or receipt is None else str(receipt.get("stack") or "")
    iid = plan.install_id(spec.model_copy(update={"stack": stack}))
    host_state = plan.host_state(installed, iid)
    verdict = _verdict(spec, checked)
    view = installed_view(installed, checked, verdict)
    drift: list[str] = []
    if host_state == plan.NOT_INSTALLED:
        drift.append("not installed")
    elif host_state != plan.IN_SYNC:
        drift.append(host_state)
    if receipt is not None and host_state in (plan.IN_SYNC,):
        drift.extend(_receipt_drift(spec, receipt, commit))
    if view is not None and installed is not None and installed.present:
        drift.extend(_version_drift(verdict, receipt))
    missing = view is None or not (installed is not None and installed.present)
    state = "error" if error else "missing" if missing else "drift" if drift else "in-sync"
    return ComponentStatus(
        component=spec.component,
        worker_type=spec.worker_type,
        name=spec.install_name,
        path=SHOWN_PREFIX + layout.stable_path(spec.install_name),
        state=state,
        desired=Desired(
            source=plan.source_display(spec),
            ref=desired_ref(spec),
            commit=commit,
            features=list(spec.features),
            binary=spec.binary,
        ),
        installed=view,
        drift=drift,
        error=error,
    )


def service_view(spec: InstallSpec, state: service.ServiceState) -> ServiceStatus:
    shown = (
        "running" if state.healthy
        else "unhealthy" if state.unhealthy
        else "not-listening" if state.running
        else "stopped"
    )
    return ServiceStatus(
        auto_start=spec.auto_start,
        mode=state.mode,
        state=shown,
        pid=state.pid if state.running else None,
        port=spec.hive_port,
        health=state.health_response if state.unhealthy else None,
    )


def with_service_drift(hive: ComponentStatus, view: ServiceStatus) -> ComponentStatus:
    """With autoStart, an installed hive that does not run (or listen) has drifted."""
    if not view.auto_start or view.state == "running" or hive.state not in ("in-sync", "drift"):
        return hive
    why = {
        "not-listening": "not listening",
        "unhealthy": f"unhealthy (GET /health answered {view.health})",
    }.get(view.state, "not running")
    drift = [*hive.drift, f"service {why} on port {view.port} (autoStart is on)"]
    return hive.model_copy(update={"drift": drift, "state": "drift"})


def extras_of(paths: dict[str, list[str]], facts: HostFacts) -> list[Extra]:
    out = []
    for name, found in paths.items():
        receipt = facts.installed[name].receipt if name in facts.installed else None
        out.append(
            Extra(
                name=name,
                paths=[SHOWN_PREFIX + p for p in found],
                managed=receipt is not None,
                version=(receipt or {}).get("version"),
            )
        )
    return out


def builds_of(found: list[BuildJob]) -> list[Build]:
    """The host's build jobs as status shows them, running ones first."""
    order = {"running": 0, "built": 1, "failed": 2, "lost": 3}
    return [
        Build(
            resource=job.label,
            stack=job.stack or None,
            binary=job.binary,
            state=job.state,
            phase=job.phase or None,
            age_seconds=job.age,
            exit_status=job.exit_status,
            job=SHOWN_PREFIX + job.job,
            summary=job.summary(),
        )
        for job in sorted(found, key=lambda j: (order[j.state], j.job))
    ]


def hive_state(components: list[ComponentStatus], extras: list[Extra]) -> str:
    if any(c.state == "error" for c in components):
        return "error"
    if extras or any(c.state != "in-sync" for c in components):
        return "drift"
    return "in-sync"


def summarize(hives: list[HiveStatus]) -> Summary:
    count = {s: sum(1 for h in hives if h.state == s) for s in ("in-sync", "drift")}
    unreachable = sum(1 for h in hives if h.state == "unreachable")
    errors = sum(1 for h in hives if h.state == "error")
    code = 2 if unreachable or errors else 1 if count["drift"] else 0
    return Summary(
        hives=len(hives),
        in_sync=count["in-sync"],
        drift=count["drift"],
        unreachable=unreachable,
        error=errors,
        exit_code=code,
    )


def unreachable_status(
    hive: HiveConfig, specs: list[InstallSpec], error: HostError, *, unreachable: bool
) -> HiveStatus:
    message = str(error)
    return HiveStatus(
        alias=hive.alias,
        host=hive.hostname,
        port=hive.ssh_port,
        user=hive.ssh_user,
        reachable=False,
        state="unreachable" if unreachable else "error",
        error=message,
        components=[
            assess(s, None, None, commit=None, stack_known=True, error=message).model_copy(
                update={"drift": []}
            )
            for s in specs
        ],
        extras=[],
    )
