"""`ensureToolchain`: a user-local Rust toolchain installed with rustup when cargo is missing.

rustup-init is downloaded on the host (curl or wget, https only) and installs to ~/.cargo and
~/.rustup without touching shell profiles; builds then use ~/.cargo/bin/cargo.
"""

from __future__ import annotations

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.base.progress import report
from rbee_infra.base.redact import redact_url
from rbee_infra.config.spec import InstallSpec
from rbee_infra.host import scripts
from rbee_infra.host.remote import Link, holder
from rbee_infra.install.transfer import markers

MANUAL = "install Rust manually (https://rustup.rs) or give the host internet access"


async def install_rust(link: Link, spec: InstallSpec) -> str:
    """Run rustup-init on the host; return the new `cargo --version`."""
    url = redact_url(spec.rustup_url)
    report(spec.label, f"cargo not found; installing Rust with rustup from {url}")
    result = await link.run(
        scripts.INSTALL_RUST,
        layout.LOCK_FILE,
        str(int(spec.lock_timeout)),
        holder(spec),
        spec.rustup_url,
        phase="toolchain",
        check=False,
        timeout=spec.build_timeout + spec.lock_timeout,
    )
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
