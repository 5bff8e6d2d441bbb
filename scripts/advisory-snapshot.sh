#!/usr/bin/env bash
# Prepares an offline copy of the RustSec advisory database for
# `cargo deny --offline check advisories`, for machines that cannot reach
# its git repository.
#
# Usage: scripts/advisory-snapshot.sh SNAPSHOT DB_DIR CONFIG_OUT
#   SNAPSHOT    a copy of the advisory-db repository's files; its SNAPSHOT.md
#               names the date it was taken ("dated YYYY-MM-DD")
#   DB_DIR      where cargo-deny's database directory is made (replaced)
#   CONFIG_OUT  where a copy of scripts/deny.toml pointing at DB_DIR is written
#
# cargo-deny looks the database up under a name derived from its URL and
# judges staleness by the HEAD commit's date, so the copy becomes a git
# repository with one commit dated the day the snapshot was taken, and the
# allowed staleness is the snapshot's age: an old snapshot is reported as old.
set -euo pipefail

snapshot=${1:?SNAPSHOT}
db_dir=${2:?DB_DIR}
config_out=${3:?CONFIG_OUT}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The directory name cargo-deny 0.20 derives from https://github.com/rustsec/advisory-db.
name=advisory-db-3157b0e258782691

taken=$(tr -s '\n ' '  ' <"$snapshot/SNAPSHOT.md" 2>/dev/null |
    grep -o 'dated [0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}' | head -1 | cut -d' ' -f2 || true)
if [[ -z $taken ]]; then
    echo "advisory-snapshot.sh: $snapshot/SNAPSHOT.md does not say when the snapshot was taken" >&2
    exit 1
fi
age_days=$((($(date +%s) - $(date -d "$taken" +%s)) / 86400 + 1))

rm -rf "$db_dir"
mkdir -p "$db_dir"
db_dir=$(cd "$db_dir" && pwd)
cp -R "$snapshot" "$db_dir/$name"
rm -rf "$db_dir/$name/.git"
(
    cd "$db_dir/$name"
    git init -q
    git add -A
    GIT_AUTHOR_DATE="${taken}T00:00:00Z" GIT_COMMITTER_DATE="${taken}T00:00:00Z" \
        git -c user.name=snapshot -c user.email=snapshot@localhost -c commit.gpgsign=false \
        commit -q -m "RustSec advisory database snapshot of $taken"
)

mkdir -p "$(dirname "$config_out")"
awk -v db="$db_dir" -v stale="P${age_days}D" '
    { print }
    /^\[advisories\]/ { print "db-path = \"" db "\""; print "maximum-db-staleness = \"" stale "\"" }
' "$root/scripts/deny.toml" >"$config_out"

echo "    advisories: offline snapshot taken $taken ($age_days days old)"
