"""Drive Pulumi dynamic providers over gRPC the way the Pulumi engine does, without the CLI.

The provider runs in `python -m pulumi.dynamic` (the SDK's own provider server, the process
the engine starts for dynamic resources); this module plays the engine: it calls Configure,
Check, Diff, Create, Read, Update and Delete with the engine's arguments and keeps a state
file with the engine's rules (what a failed step records, secrets encrypted at rest).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime._serialization import _serialize
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from ._provider_proc import ProviderProcess, ServerStartError, prewarm
from ._state_file import Res as _Res
from ._state_file import State as _State
from ._state_file import StateFile
from ._wire import UNKNOWN, decl_inputs, from_wire, refs, resolve_refs, to_wire
from .engine_types import (
    DEFAULT_TYPE,
    PROVIDER_KEY,
    Decl,
    Plan,
    ProviderError,
    Ref,
    RunResult,
    Secret,
    StateEntry,
    Step,
    UpResult,
)

__all__ = [
    "DEFAULT_TYPE", "PROVIDER_KEY", "UNKNOWN", "Decl", "Engine", "Plan", "ProviderError", "Ref",
    "RunResult", "Secret", "StateEntry", "Step", "UpResult",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DIFF_UNKNOWN = provider_pb2.DiffResponse.DIFF_UNKNOWN
DIFF_NONE = provider_pb2.DiffResponse.DIFF_NONE
DIFF_SOME = provider_pb2.DiffResponse.DIFF_SOME


class _Cancelled(Exception):
    pass


_Wire = Callable[[dict[str, Any], "set[str] | frozenset[str]"], struct_pb2.Struct]


# --------------------------------------------------------------------------- engine


@dataclass
class _Run:
    kind: str
    state: _State
    result: RunResult
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancelled: bool = False
    frozen: bool = False  # the "engine" died: nothing more reaches the state file
    outputs: dict[str, tuple[dict[str, Any], set[str]]] = field(default_factory=dict)

    def fail(self, name: str, message: str) -> None:
        with self.lock:
            prev = self.result.errors.get(name)
            self.result.errors[name] = f"{prev}\n{message}" if prev else message

    def add_step(self, step: Step) -> None:
        with self.lock:
            self.result.steps.append(step)


class Engine:
    def __init__(
        self,
        state_path: Path,
        *,
        stack: str = "test",
        project: str = "rbee-infra",
        parallel: int = 16,
        env: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
        cwd: Path | None = None,
        call_timeout: float = 900.0,
        fresh_provider_per_run: bool = True,
        continue_on_error: bool = True,
        start_mode: str | None = None,
    ) -> None:
        self.state_path = Path(state_path)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.key_path = self.state_path.with_name(self.state_path.name + ".key")
        self.provider_log_path = self.state_path.with_name(self.state_path.stem + ".provider.log")
        self.stack = stack
        self.project = project
        self.parallel = parallel
        self.config = dict(config or {})
        self.cwd = cwd or REPO_ROOT
        self.call_timeout = call_timeout
        self.fresh_provider_per_run = fresh_provider_per_run
        self.continue_on_error = continue_on_error
        self.calls: list[tuple[str, str]] = []
        self._calls_mark = 0
        self.start_mode = start_mode or os.environ.get("RBEE_HARNESS_PROVIDER_START", "fork")
        self._env = self._make_env(env)
        self._file = StateFile(self.state_path, self.key_path)
        self._server: ProviderProcess | None = None
        self._spare: ProviderProcess | None = None
        self._server_lock = threading.Lock()
        self._calls_cv = threading.Condition()
        self._run_lock = threading.Lock()
        self._active: _Run | None = None
        self._bg = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-bg")
        self._retiring: list[threading.Thread] = []
        self._closed = False
        if self.start_mode == "fork":
            prewarm(self._env, self.cwd)  # its ~1 s of imports overlaps the test's own setup
        else:
            self._spare = self._new_server()

    # ------------------------------------------------------------------ public API

    def urn(self, name: str, type_token: str = DEFAULT_TYPE) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{type_token}::{name}"

    def preview(self, decls: list[Decl]) -> Plan:
        """Check + Diff for each declared resource, deletes for the undeclared; no mutation."""
        plan = Plan()
        with self._running("preview", plan) as run:
            self._declared_phase(run, decls, preview=True)
            for res in self._delete_set(run.state, decls).values():
                run.add_step(Step(res.name, "delete"))
        return plan

    def up(self, decls: list[Decl], *, continue_on_error: bool | None = None) -> UpResult:
        result = UpResult()
        coe = self.continue_on_error if continue_on_error is None else continue_on_error
        with self._running("up", result) as run:
            self._drop_pending_operations(run)
            earlier = self._pending_delete_set(run.state)
            self._delete_phase(run, earlier, coe)
            self._declared_phase(run, decls, preview=False, continue_on_error=coe)
            if not run.cancelled and (coe or run.result.ok):
                deletes = self._delete_set(run.state, decls)
                tried = {id(r) for r in earlier.values()}
                deletes.update({k: r for k, r in self._pending_delete_set(run.state).items()
                                if id(r) not in tried})
                self._delete_phase(run, deletes, coe)
        return result

    def destroy(self) -> UpResult:
        result = UpResult()
        with self._running("destroy", result) as run:
            self._drop_pending_operations(run)
            deletes = {n: r for n, r in run.state.resources.items()}
            deletes.update(self._pending_delete_set(run.state))
            self._delete_phase(run, deletes, True)
        return result

    def refresh(self) -> UpResult:
        result = UpResult()
        with self._running("refresh", result) as run:
            names = sorted(run.state.resources)
            self._run_graph(run, {n: set() for n in names}, lambda n: self._refresh_one(run, n),
                            continue_on_error=True)
        return result

    def up_async(self, decls: list[Decl], **kw: Any) -> Future[UpResult]:
        """`up` in a background thread (pair with wait_for_call + kill_provider/cancel)."""
        self._calls_mark = len(self.calls)
        return self._bg.submit(self.up, decls, **kw)

    def destroy_async(self) -> Future[UpResult]:
        self._calls_mark = len(self.calls)
        return self._bg.submit(self.destroy)

    def state(self) -> dict[str, StateEntry]:
        return {n: r.entry() for n, r in self._load().resources.items()}

    def pending_deletes(self) -> list[StateEntry]:
        return [r.entry() for r in self._load().pending_deletes]

    def pending_operations(self) -> list[dict[str, Any]]:
        return list(self._load().pending_operations)

    def raw_state(self) -> dict[str, Any]:
        if not self.state_path.exists():
            return {}
        return json.loads(self.state_path.read_text())

    def wait_for_call(self, method: str, name: str, timeout: float = 30.0) -> None:
        """Block until `method` was sent for resource `name` in the latest run (the one
        started by the last *_async call, or the last run started)."""
        def seen() -> bool:
            return (method, name) in self.calls[self._calls_mark:]

        with self._calls_cv:
            if not self._calls_cv.wait_for(seen, timeout):
                raise TimeoutError(f"no {method} call for {name} within {timeout}s")

    def cancel(self) -> None:
        """Like one Ctrl-C: start no new step, let running ones finish and be recorded."""
        run = self._active
        if run is not None:
            run.cancelled = True

    def kill_provider(self) -> None:
        """Like a hard kill of `pulumi up`: SIGKILL the provider server; the run in progress
        records nothing more (operations in flight stay pending in the state file)."""
        run = self._active
        if run is not None:
            with run.lock:
                run.cancelled = True
                run.frozen = True
        with self._server_lock:
            server, self._server = self._server, None
        if server is not None:
            server.kill()

    def provider_pid(self) -> int | None:
        server = self._server
        return server.pid if server is not None and server.alive() else None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.cancel()
        self._bg.shutdown(wait=True, cancel_futures=True)
        with self._server_lock:
            servers = [s for s in (self._server, self._spare) if s is not None]
            self._server = self._spare = None
        for s in servers:
            s.shutdown()
        for t in self._retiring:
            t.join(5)

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ run plumbing

    def _make_env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PULUMI_PROJECT"] = self.project
        env.setdefault("GRPC_VERBOSITY", "ERROR")
        env.update(extra or {})
        return env

    @contextlib.contextmanager
    def _running(self, kind: str, result: RunResult) -> Iterator[_Run]:
        if self._closed:
            raise RuntimeError("engine is closed")
        with self._run_lock:
            self._calls_mark = len(self.calls)
            run = _Run(kind, self._load(), result)
            self._active = run
            try:
                yield run
            finally:
                self._active = None
                if self.fresh_provider_per_run:
                    self._recycle_server()

    def _new_server(self) -> ProviderProcess:
        return ProviderProcess(self._env, self.cwd, self.provider_log_path, self.start_mode)

    def _recycle_server(self) -> None:
        """Each CLI command runs its own provider process: retire this one, warm the next."""
        with self._server_lock:
            old, self._server = self._server, None
            if self.start_mode == "spawn" and (self._spare is None or not self._spare.alive()):
                self._spare = self._new_server()
        if old is not None:
            t = threading.Thread(target=old.shutdown, daemon=True)
            t.start()
            self._retiring.append(t)

    def _stub(self) -> tuple[provider_pb2_grpc.ResourceProviderStub, bool]:
        with self._server_lock:
            server = self._server
            if server is None or not server.alive():
                if server is not None:
                    server.shutdown(grace=0)
                server = self._spare if self._spare is not None and self._spare.alive() else None
                self._spare = None
                server = server or self._new_server()
                try:
                    stub = server.connect()
                except ServerStartError as e:
                    server.shutdown(grace=0)
                    raise ProviderError("start", None, str(e)) from e
                self._log_call("Configure", "")
                try:
                    resp = stub.Configure(
                        provider_pb2.ConfigureRequest(
                            args=to_wire(self.config, set(), False), acceptSecrets=True,
                            acceptResources=True,
                        ),
                        timeout=60, wait_for_ready=True,
                    )
                except grpc.RpcError as e:
                    server.shutdown(grace=0)
                    raise ProviderError("Configure", e.code(), e.details() or str(e)) from e
                server.accept_secrets = resp.acceptSecrets
                self._server = server
            assert server.stub is not None
            return server.stub, server.accept_secrets

    def _log_call(self, method: str, name: str) -> None:
        with self._calls_cv:
            self.calls.append((method, name))
            self._calls_cv.notify_all()

    def _call(self, run: _Run, method: str, name: str, build: Callable[[_Wire], Any]) -> Any:
        """Send one RPC; `build` makes the request once the provider's secret support is
        known (a provider that does not accept secrets gets them as plain values)."""
        if run.cancelled:
            raise _Cancelled("cancelled before " + method)
        stub, accept_secrets = self._stub()
        request = build(lambda props, secret: to_wire(props, secret, accept_secrets))
        self._log_call(method, name)
        try:
            return getattr(stub, method)(request, timeout=self.call_timeout)
        except grpc.RpcError as e:
            raise ProviderError(method, e.code(), e.details() or str(e)) from e

    # ------------------------------------------------------------------ state persistence

    def _load(self) -> _State:
        return self._file.load()

    def _res_to_json(self, res: _Res) -> dict[str, Any]:
        return self._file.res_to_json(res)

    def _persist(self, run: _Run) -> None:
        """Write the snapshot; callers hold run.lock."""
        if not run.frozen:
            self._file.save(run.state, self.stack, self.project)

    def _begin_op(self, run: _Run, op: str, res: _Res) -> dict[str, Any]:
        pending = {"type": op, "resource": self._res_to_json(res)}
        with run.lock:
            run.state.pending_operations.append(pending)
            self._persist(run)
        return pending

    def _end_op(self, run: _Run, pending: dict[str, Any],
                mutate: Callable[[], None] | None = None) -> None:
        with run.lock:
            if run.frozen:
                return
            with contextlib.suppress(ValueError):
                run.state.pending_operations.remove(pending)
            if mutate is not None:
                mutate()
            self._persist(run)

    def _drop_pending_operations(self, run: _Run) -> None:
        ops = run.state.pending_operations
        if not ops:
            return
        names = ", ".join(f"{o['type']} {o['resource']['name']}" for o in ops)
        run.result.warnings.append(
            f"dropping {len(ops)} pending operation(s) from an interrupted deployment: {names}"
        )
        with run.lock:
            run.state.pending_operations = []
            self._persist(run)

    # ------------------------------------------------------------------ graph execution

    def _run_graph(self, run: _Run, deps: dict[str, set[str]], work: Callable[[str], bool],
                   *, continue_on_error: bool,
                   blocked: Callable[[str, str], str] | None = None) -> None:
        """Run `work(node)` for every node once all its deps succeeded, up to `parallel` at a
        time. A node whose dep failed is not run (`blocked(node, dep)` is its error)."""
        remaining = {n: set(d) for n, d in deps.items()}
        ok: set[str] = set()
        failed: set[str] = set()
        running: dict[Future[bool], str] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
            while remaining or running:
                progressed = True
                while progressed:
                    progressed = False
                    stop = run.cancelled or (not continue_on_error and bool(failed))
                    for name in sorted(remaining):
                        ds = remaining[name]
                        bad = sorted(d for d in ds if d in failed)
                        if bad:
                            del remaining[name]
                            failed.add(name)
                            msg = (blocked(name, bad[0]) if blocked
                                   else f"skipped: dependency {bad[0]} failed")
                            run.fail(name, msg)
                            progressed = True
                        elif stop:
                            del remaining[name]
                            failed.add(name)
                            run.fail(name, "skipped: deployment stopped"
                                     + (" (cancelled)" if run.cancelled else " after an error"))
                            progressed = True
                        elif ds <= ok:
                            del remaining[name]
                            running[pool.submit(self._timed, run, name, work)] = name
                if not running:
                    if remaining:
                        raise ValueError(f"dependency cycle among {sorted(remaining)}")
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    name = running.pop(fut)
                    (ok if fut.result() else failed).add(name)

    def _timed(self, run: _Run, name: str, work: Callable[[str], bool]) -> bool:
        t0 = time.monotonic()
        try:
            return work(name)
        except _Cancelled as e:
            run.fail(name, f"cancelled: {e}")
            return False
        except ProviderError as e:
            run.fail(name, e.details)
            return False
        except Exception:
            # a bug in a step must still end the run with a result
            run.fail(name, "engine driver error:\n" + traceback.format_exc())
            return False
        finally:
            with run.lock:
                key = name.split("#", 1)[0]
                run.result.durations[key] = (run.result.durations.get(key, 0.0)
                                             + time.monotonic() - t0)

    # ------------------------------------------------------------------ declared resources

    def _declared_phase(self, run: _Run, decls: list[Decl], *, preview: bool,
                        continue_on_error: bool = True) -> None:
        by_name: dict[str, Decl] = {}
        for d in decls:
            if d.name in by_name:
                raise ValueError(f"duplicate resource name {d.name!r}")
            if PROVIDER_KEY in d.inputs:
                raise ValueError("A dynamic resource must not define the __provider key")
            by_name[d.name] = d
        deps: dict[str, set[str]] = {}
        for d in decls:
            ds = set(d.depends_on) | {r.resource for r in refs(d.inputs)}
            unknown = ds - by_name.keys()
            if unknown:
                raise ValueError(f"{d.name} depends on undeclared {sorted(unknown)}")
            deps[d.name] = ds
        providers: dict[int, tuple[str, bool]] = {}
        for d in decls:
            if id(d.provider) not in providers:
                text, has_secrets = _serialize(True, serialize_provider, d.provider)
                always = getattr(d.provider, "serialize_as_secret_always", True)
                providers[id(d.provider)] = (text, bool(always or has_secrets))

        def work(name: str) -> bool:
            decl = by_name[name]
            return self._process(run, decl, sorted(deps[name]), providers[id(decl.provider)],
                                 preview)

        self._run_graph(run, deps, work, continue_on_error=preview or continue_on_error)

    def _inputs_for(self, run: _Run, decl: Decl, provider: tuple[str, bool], preview: bool
                    ) -> tuple[dict[str, Any], set[str]]:
        def lookup(ref: Ref) -> tuple[Any, bool]:
            outs, secret = run.outputs.get(ref.resource, ({}, set()))
            if preview:
                # the engine previews a create/update as "outputs = new inputs", other
                # outputs being unknown
                return outs.get(ref.key, UNKNOWN), ref.key in secret
            return outs.get(ref.key), ref.key in secret

        resolved = resolve_refs(decl.inputs, lookup)
        inputs: dict[str, Any] = {}
        secret: set[str] = set()
        for k, v in resolved.items():
            inputs[k], is_secret = decl_inputs(v)
            if is_secret:
                secret.add(k)
        inputs[PROVIDER_KEY] = provider[0]
        if provider[1]:
            secret.add(PROVIDER_KEY)
        return inputs, secret

    def _process(self, run: _Run, decl: Decl, deps: list[str], provider: tuple[str, bool],
                 preview: bool) -> bool:
        name = decl.name
        urn = self.urn(name, decl.type_token)
        inputs, secret_in = self._inputs_for(run, decl, provider, preview)
        old = run.state.resources.get(name)
        checked, failures = self._check(run, name, urn, decl.type_token,
                                        old, inputs, secret_in)
        if failures:
            run.fail(name, "check failed: " + "; ".join(failures))
            return False
        new = _Res(name, urn, decl.type_token, "", checked, {}, deps, set(secret_in))
        secret_out_extra = set(decl.secret_outputs)
        if old is None:
            if preview:
                # as Pulumi's preview shows a create: every checked input, added
                added = {k: (None, v) for k, v in sorted(new.inputs.items())}
                return self._record_preview(run, Step(name, "create", detailed_changes=added), new)
            return self._create(run, new, secret_out_extra, Step(name, "create"))
        step = self._diff(run, old, new)
        if preview:
            return self._record_preview(run, step, new)
        if step.op == "same":
            with run.lock:
                # like the engine's snapshot manager (sameSnapshotMutation.mustWrite), a same
                # step that changes nothing recorded is not checkpointed
                changed = (old.inputs, old.secret_inputs, old.depends_on) != (
                    checked, new.secret_inputs, deps)
                old.inputs, old.secret_inputs, old.depends_on = checked, new.secret_inputs, deps
                if changed:
                    self._persist(run)
                run.outputs[name] = (old.outputs, old.secret_outputs)
            run.add_step(step)
            return True
        if step.op == "update":
            return self._update(run, old, new, secret_out_extra, step)
        if step.delete_before_replace:
            try:
                deleted = self._delete_res(run, old, step, record=False)
            except Exception as e:
                step.error = getattr(e, "details", None) or str(e)
                run.add_step(step)
                raise
            return deleted and self._create(run, new, secret_out_extra, step)
        return self._create(run, new, secret_out_extra, step, replacing=old)

    def _record_preview(self, run: _Run, step: Step, new: _Res) -> bool:
        with run.lock:
            if step.op == "same":
                old = run.state.resources[step.name]
                run.outputs[step.name] = (old.outputs, old.secret_outputs)
            else:
                run.outputs[step.name] = (new.inputs, new.secret_inputs)
        run.add_step(step)
        return True

    def _check(self, run: _Run, name: str, urn: str, type_token: str, old: _Res | None,
               inputs: dict[str, Any], secret_in: set[str]) -> tuple[dict[str, Any], list[str]]:
        olds = old.inputs if old is not None else {}
        old_secret = old.secret_inputs if old is not None else set()
        resp = self._call(run, "Check", name, lambda w: provider_pb2.CheckRequest(
            urn=urn, name=name, type=type_token, olds=w(olds, old_secret),
            news=w(inputs, secret_in), randomSeed=os.urandom(32),
        ))
        checked, _ = from_wire(resp.inputs, keep_unknowns=True)
        failures = [f"{f.property}: {f.reason}" if f.property else f.reason
                    for f in resp.failures]
        return checked, failures

    def _diff(self, run: _Run, old: _Res, new: _Res) -> Step:
        resp = self._call(run, "Diff", new.name, lambda w: provider_pb2.DiffRequest(
            id=old.id, urn=new.urn, name=new.name, type=new.type,
            olds=w(old.outputs, old.secret_outputs), news=w(new.inputs, new.secret_inputs),
            old_inputs=w(old.inputs, old.secret_inputs),
        ))
        detailed = {
            k: (old.inputs.get(k), new.inputs.get(k))
            for k in sorted(old.inputs.keys() | new.inputs.keys())
            if old.inputs.get(k) != new.inputs.get(k)
        }
        changes = resp.changes
        if changes == DIFF_UNKNOWN:
            # the engine falls back to comparing old and new inputs itself
            changes = DIFF_SOME if detailed else DIFF_NONE
        replaces = list(resp.replaces)
        op = "same"
        if changes == DIFF_SOME:
            op = "replace" if replaces else "update"
        return Step(new.name, op, replaces=replaces, diffs=list(resp.diffs) or list(detailed),
                    detailed_changes=detailed,
                    delete_before_replace=bool(resp.deleteBeforeReplace) and op == "replace")

    def _outputs(self, res: _Res, props: Any, extra: set[str]) -> None:
        outs, secret = from_wire(props)
        res.outputs = outs
        res.secret_outputs = (secret | {k for k in outs if k in res.secret_inputs}
                              | {k for k in extra if k in outs})

    def _create(self, run: _Run, new: _Res, extra_secret: set[str], step: Step,
                replacing: _Res | None = None) -> bool:
        def call(w: Any) -> Any:
            return provider_pb2.CreateRequest(
                urn=new.urn, name=new.name, type=new.type,
                properties=w(new.inputs, new.secret_inputs), timeout=self.call_timeout,
            )

        def check(resp: Any) -> None:
            if not resp.id:
                raise ProviderError("Create", None, "provider returned an empty ID from Create")
            new.id = resp.id

        def commit() -> None:
            if replacing is not None:
                run.state.pending_deletes.append(replacing)

        return self._change(run, "Create", "creating", new, new, call, check, commit,
                            extra_secret, step)

    def _update(self, run: _Run, old: _Res, new: _Res, extra_secret: set[str],
                step: Step) -> bool:
        def call(w: Any) -> Any:
            return provider_pb2.UpdateRequest(
                id=old.id, urn=new.urn, name=new.name, type=new.type,
                olds=w(old.outputs, old.secret_outputs), news=w(new.inputs, new.secret_inputs),
                old_inputs=w(old.inputs, old.secret_inputs), timeout=self.call_timeout,
            )

        def check(resp: Any) -> None:
            new.id = old.id

        return self._change(run, "Update", "updating", old, new, call, check, lambda: None,
                            extra_secret, step)

    def _change(self, run: _Run, method: str, doing: str, subject: _Res, new: _Res,
                call: Callable[[Any], Any], check: Callable[[Any], None],
                also: Callable[[], None], extra_secret: set[str], step: Step) -> bool:
        """Create or Update as the engine does it: a pending operation while the call runs,
        the outputs recorded when it returns, the step failed (and nothing recorded) when it
        raises; `also` runs when the new state is committed."""
        pending = self._begin_op(run, doing, subject)
        try:
            resp = self._call(run, method, new.name, call)
            check(resp)
        except Exception as e:
            self._end_op(run, pending)
            step.error = getattr(e, "details", None) or str(e)
            run.add_step(step)
            raise
        self._outputs(new, resp.properties, extra_secret)

        def commit() -> None:
            also()
            run.state.resources[new.name] = new
            run.outputs[new.name] = (new.outputs, new.secret_outputs)

        self._end_op(run, pending, commit)
        if run.frozen:
            return False
        run.add_step(step)
        return True

    # ------------------------------------------------------------------ deletes

    def _delete_set(self, state: _State, decls: list[Decl]) -> dict[str, _Res]:
        declared = {d.name for d in decls}
        return {n: r for n, r in state.resources.items() if n not in declared}

    def _pending_delete_set(self, state: _State) -> dict[str, _Res]:
        return {f"{r.name}#old{i}": r for i, r in enumerate(state.pending_deletes)}

    def _delete_phase(self, run: _Run, targets: dict[str, _Res], continue_on_error: bool
                      ) -> None:
        if not targets:
            return
        # a resource is deleted only after everything that depends on it
        deps: dict[str, set[str]] = {k: set() for k in targets}
        for k, res in targets.items():
            for d in res.depends_on:
                if d in targets and "#" not in k:
                    deps[d].add(k)

        def work(key: str) -> bool:
            res = targets[key]
            op = "delete-replaced" if "#" in key else "delete"
            return self._delete_res(run, res, Step(res.name, op), pending_copy="#" in key)

        self._run_graph(run, deps, work, continue_on_error=continue_on_error,
                        blocked=lambda n, d: f"skipped: dependent {d} was not deleted")

    def _delete_res(self, run: _Run, res: _Res, step: Step, *, pending_copy: bool = False,
                    record: bool = True) -> bool:
        pending = self._begin_op(run, "deleting", res)
        try:
            self._call(run, "Delete", res.name, lambda w: provider_pb2.DeleteRequest(
                id=res.id, urn=res.urn, name=res.name, type=res.type,
                properties=w(res.outputs, res.secret_outputs),
                old_inputs=w(res.inputs, res.secret_inputs), timeout=self.call_timeout,
            ))
        except Exception as e:
            self._end_op(run, pending)
            step.error = getattr(e, "details", None) or str(e)
            if record:
                run.add_step(step)
            raise

        def commit() -> None:
            if pending_copy:
                run.state.pending_deletes = [r for r in run.state.pending_deletes
                                             if r is not res]
            elif run.state.resources.get(res.name) is res:
                del run.state.resources[res.name]

        self._end_op(run, pending, commit)
        if record:
            run.add_step(step)
        return not run.frozen

    # ------------------------------------------------------------------ refresh

    def _refresh_one(self, run: _Run, name: str) -> bool:
        res = run.state.resources[name]
        try:
            resp = self._call(run, "Read", name, lambda w: provider_pb2.ReadRequest(
                id=res.id, urn=res.urn, name=res.name, type=res.type,
                properties=w(res.outputs, res.secret_outputs),
                inputs=w(res.inputs, res.secret_inputs),
            ))
        except Exception as e:
            run.add_step(Step(name, "read", error=getattr(e, "details", None) or str(e)))
            raise
        if not resp.id:
            def drop() -> None:
                run.state.resources.pop(name, None)
            with run.lock:
                drop()
                self._persist(run)
            run.add_step(Step(name, "refresh-gone"))
            return True
        outs, secret = from_wire(resp.properties)
        new_inputs = None
        if resp.HasField("inputs"):
            new_inputs, _ = from_wire(resp.inputs)
        before = dict(res.outputs)
        with run.lock:
            res.id = resp.id
            res.outputs = outs
            res.secret_outputs = secret | {k for k in outs if k in res.secret_outputs
                                           or k in res.secret_inputs}
            if new_inputs is not None:
                res.inputs = new_inputs
            self._persist(run)
        changed = {k: (before.get(k), outs.get(k)) for k in sorted(before.keys() | outs.keys())
                   if before.get(k) != outs.get(k)}
        run.add_step(Step(name, "read", diffs=list(changed), detailed_changes=changed))
        return True


