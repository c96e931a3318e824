#!/bin/sh
# The hand-written peer of rbee-infra's cold install: run on each host as `sh -s -- ARGS`
# (one ssh per host, all hosts in parallel). The same steps as rbee-infra: resolve the tag
# (git ls-remote), fetch it shallowly into one checkout, build each binary with cargo into one
# shared target dir (the workers build incrementally after the hive), copy it into a release
# dir, check it runs (`--version`, else `--help`), point a stable symlink at it, record commit
# and sha256.
# args: root dir (under $HOME), repo, tag, cargo, then name:binary:features per binary.
set -eu
cd "$HOME"
root=$1 repo=$2 tag=$3 cargo=$4; shift 4
case $cargo in "~/"*) cargo="$HOME/${cargo#"~/"}";; esac
commit=$(git ls-remote "$repo" "refs/tags/$tag^{}" | cut -f1)
[ -n "$commit" ] || commit=$(git ls-remote "$repo" "refs/tags/$tag" | cut -f1)
[ -n "$commit" ] || { echo "tag $tag not found in $repo" >&2; exit 1; }
mkdir -p "$root/bin" "$root/receipts"
[ -d "$root/checkout/.git" ] || git init -q "$root/checkout"
if [ "$(git -C "$root/checkout" rev-parse -q --verify HEAD 2>/dev/null)" != "$commit" ]; then
  git -C "$root/checkout" fetch -q --depth 1 --no-tags "$repo" "refs/tags/$tag"
  git -C "$root/checkout" checkout -q --force --detach FETCH_HEAD
fi
for item in "$@"; do
  name=${item%%:*} rest=${item#*:}
  bin=${rest%%:*} features=${rest#*:}
  rel="$root/releases/$name/$commit"
  if [ ! -x "$rel/$bin" ]; then
    if [ -n "$features" ]; then set -- --features "$features"; else set --; fi
    (cd "$root/checkout" && CARGO_TARGET_DIR="$HOME/$root/target" "$cargo" build -q --release --bin "$bin" "$@")
    mkdir -p "$rel" && cp "$root/target/release/$bin" "$rel/$bin"
  fi
  # the check rbee-infra makes: --version naming the binary, else (rbee's workers have no
  # --version) --help with a usage line
  "$rel/$bin" --version 2>/dev/null | grep -q -- "$bin" || "$rel/$bin" --help | grep -qi '^usage:'
  ln -sfn "../releases/$name/$commit/$bin" "$root/bin/$name"
  printf '%s %s\n' "$commit" "$(sha256sum < "$rel/$bin" | cut -d' ' -f1)" > "$root/receipts/$name"
done
