"""What an operator is shown of a failed build's log: the lines that say what went wrong.

A build job's log is cargo's whole output. When a build script fails, cargo prints everything
the script wrote to stdout, which for rbee's hive is mostly `cargo:rerun-if-changed=` and
`cargo:rerun-if-env-changed=` directives; the last lines of such a log are that noise around
the panic. `useful_tail` keeps cargo's `error:` lines, what follows `Caused by:`, the build
script's panic and its message, rustc's error locations, and fills the rest of its budget
with the last other lines; progress lines, rerun directives and backtrace frames are dropped.
"""

from __future__ import annotations

import re

TAIL_LINES = 20

# lines that never explain a failure: cargo's progress, build-script directives, the job's
# phase markers, backtrace frames and the hints around them, the sections' own headers
_NOISE = re.compile(
    r"""^(?:
        cargo:(?:rerun-if-changed|rerun-if-env-changed|rustc-[\w-]+|metadata)=
      | (?:Compiling|Checking|Fresh|Downloading|Downloaded|Updating|Locking|Adding|Blocking
         |Running|Finished|Building)\s
      | ==\s\w+$
      | ---\s(?:stdout|stderr)$
      | warning:\sbuild\sfailed,\swaiting\sfor\sother\sjobs
      | note:\s(?:run\swith\s`RUST_BACKTRACE|To\simprove\sbacktraces|Some\sdetails\sare\somitted)
      | stack\sbacktrace:$
      | \d+:\s
      | at\s\S+:\d+(?::\d+)?$
    )""",
    re.X,
)
# lines that say what failed
_KEY = re.compile(
    r"""^(?:
        error(?:\[\w+\])?:
      | fatal:
      | Caused\sby:
      | -->\s
      | process\sdidn't\sexit\ssuccessfully
      | thread\s'[^']*'(?:\s\(\d+\))?\spanicked\sat\s
    )""",
    re.X,
)
# after these, the next lines are their message (a panic's, a cause's)
_OPENS = re.compile(r"^(?:thread\s'[^']*'(?:\s\(\d+\))?\spanicked\sat\s|Caused\sby:)")


def useful_tail(text: str, limit: int = TAIL_LINES) -> str:
    """At most `limit` lines of `text` (a failed build's log), in their order: every line that
    says what failed first, then the last of the others (see the module docstring)."""
    kept: list[str] = []
    key: set[int] = set()
    message = False  # the lines right after a panic or a `Caused by:`, up to a gap or a note
    for raw in text.splitlines():
        line = raw.rstrip()
        bare = line.strip()
        noise = not bare or bool(_NOISE.match(bare))
        if noise or bare.startswith("note:"):
            message = False
        if noise:
            continue
        if message or _KEY.match(bare):
            key.add(len(kept))
        message = message or bool(_OPENS.match(bare))
        kept.append(line)
    if len(kept) <= limit:
        return "\n".join(kept)
    chosen = sorted(key)
    if len(chosen) > limit:
        chosen = [*chosen[: limit - 1], chosen[-1]]
    rest = [i for i in range(len(kept) - 1, -1, -1) if i not in key]
    chosen_set = set(chosen) | set(rest[: limit - len(chosen)])
    return "\n".join(kept[i] for i in sorted(chosen_set))
