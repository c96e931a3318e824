"""`ensureToolchain`: a user-local Rust toolchain installed with rustup when cargo is missing,
and what the tree's build script runs (`ensure_build_needs`).

rustup-init is downloaded on the host (curl or wget, https only) and installs to ~/.cargo and
~/.rustup without touching shell profiles; builds then use ~/.cargo/bin/cargo.
"""

from __future__ import annotations

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.base.progress import report
from rbee_infra.base.redact import redact_url
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import buildneeds
from rbee_infra.decide.buildneeds import BuildNeeds
from rbee_infra.decide.facts import HostFacts
from rbee_infra.host import scripts
from rbee_infra.host.remote import Link, holder
from rbee_infra.host.ssh import Result
from rbee_infra.install.transfer import markers

MANUAL = "install Rust manually (https://rustup.rs) or give the host internet access"


async def _locked(link: Link, spec: InstallSpec, script: str, *args: str) -> Result:
    """An install script that takes the host lock first (phase toolchain; never raises on
    its exit status)."""
    return await link.run(
        script,
        layout.LOCK_FILE,
        str(int(spec.lock_timeout)),
        holder(spec),
        *args,
        phase="toolchain",
        check=False,
        timeout=spec.build_timeout + spec.lock_timeout,
    )


async def install_rust(link: Link, spec: InstallSpec) -> str:
    """Run rustup-init on the host; return the new `cargo --version`."""
    url = redact_url(spec.rustup_url)
    report(spec.label, f"cargo not found; installing Rust with rustup from {url}")
    result = await _locked(link, spec, scripts.INSTALL_RUST, spec.rustup_url)
    if result.exit_status == 0:
        lines = result.stdout.strip().splitlines()
        version = lines[-1] if lines else ""
        report(spec.label, f"installed {version or 'Rust'} to ~/.cargo")
        return version
    found, detail = markers(result)
    step = found.get("failed", "")
    if step == "notool":
        message = f"cannot download rustup-init from {url}: the host has neither curl nor wget"
    elif step == "download":
        message = f"could not reach {url} to install Rust: {detail or 'download failed'}; {MANUAL}"
    elif step == "install":
        message = f"rustup-init from {url} failed (exit {result.exit_status}): {detail}"
    else:
        message = f"could not install Rust (exit {result.exit_status}): {detail}"
    raise HostError(spec.label, "toolchain", message)


def failure_detail(stderr: str) -> str:
    """What a failed install step said: its first lines that name an error (npm, cargo and
    rustup put the cause there), then its last two."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("@@")]
    errors = [ln for ln in lines if "error" in ln.lower()][:4]
    if not errors:
        return "\n".join(lines[-5:])
    return "\n".join(errors + [ln for ln in lines[-2:] if ln not in errors])


def step_command(step: tuple[str, ...], spec: InstallSpec, facts: HostFacts) -> tuple[
    list[str], str, str
]:
    """INSTALL_TOOL's arguments for one step of `buildneeds.ensure_steps`, the command it runs
    (as the error shows it) and what it installs."""
    kind, *rest = step
    rustup = facts.tools.get("rustup", "rustup")
    if kind == "toolchain":
        channel = rest[0]
        return ([kind, rustup, channel], f"rustup toolchain install {channel} --profile minimal",
                f"Rust toolchain {channel}")
    if kind == "target":
        toolchain, *targets = rest
        plural = "s" if len(targets) > 1 else ""
        return ([kind, rustup, toolchain, *targets],
                f"rustup target add --toolchain {toolchain} {' '.join(targets)}",
                f"Rust target{plural} {', '.join(targets)}")
    if kind == "pnpm":
        version, via = rest
        want = f"pnpm@{version}" if version else "pnpm"
        command = (f"npm install -g --prefix {buildneeds.PNPM_PREFIX} {want}" if via == "npm"
                   else f"corepack install -g {want}")
        return [kind, version, via], command, f"pnpm {version}".strip()
    return [kind, spec.cargo], f"{spec.cargo} install wasm-pack --locked", "wasm-pack"


async def ensure_build_needs(
    link: Link, spec: InstallSpec, needs: BuildNeeds, facts: HostFacts
) -> None:
    """`ensureToolchain` for what the tree's build needs besides cargo (`buildneeds`): the
    Rust toolchain and targets (rustup), pnpm (npm or corepack, into ~/.local), wasm-pack
    (`cargo install`), in that order, each under the host lock. A step that fails stops the
    install in the `toolchain` phase, naming what it installed and the command."""
    user = facts.user or spec.connection.user
    for step in buildneeds.ensure_steps(needs, facts, user):
        args, command, what = step_command(step, spec, facts)
        report(spec.label, f"{what} missing; installing it: {command}")
        result = await _locked(link, spec, scripts.INSTALL_TOOL, *args)
        if result.exit_status != 0:
            raise HostError(
                spec.label,
                "toolchain",
                f"could not install {what}: `{command}` failed (exit {result.exit_status}): "
                f"{failure_detail(result.stderr) or 'no output'}",
            )
        report(spec.label, f"installed {what}")
