#!/usr/bin/env bash
# Switchyard database restore from a scripts/backup.sh archive into $DATABASE_URL, then a ledger
# check (every balance equals the sum of its ledger rows, none negative).
#
#   scripts/restore.sh [--dir DIR] [--dry-run] FILE|latest
#   scripts/restore.sh --list [--dir DIR]
#
# The target should be an empty database (create one, restore, check, then point the gateway
# at it); --clean replaces the objects of a non-empty one. Stop the gateways first.
set -euo pipefail

dir="${BACKUP_DIR:-./backups}"
dry_run=0
clean=0
list=0
source_file=""

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --clean) clean=1; shift ;;
    --list) list=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "restore: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) source_file="$1"; shift ;;
  esac
done

if [ "$list" = 1 ]; then exec "$(dirname "$0")/backup.sh" --list --dir "$dir"; fi
[ -n "$source_file" ] || { echo "restore: name an archive (or 'latest')" >&2; usage >&2; exit 2; }
if [ "$source_file" = latest ]; then
  source_file="$(ls -1t "$dir"/switchyard-*.dump 2>/dev/null | head -1 || true)"
  [ -n "$source_file" ] || { echo "restore: no backups in $dir" >&2; exit 1; }
fi
[ -f "$source_file" ] || { echo "restore: $source_file not found" >&2; exit 1; }

: "${DATABASE_URL:?restore: DATABASE_URL must name the database to restore into}"
bin="${PG_BIN:+$PG_BIN/}"
tables="$("${bin}pg_restore" --list "$source_file" | grep -c ' TABLE ' || true)"

if [ "$dry_run" = 1 ]; then
  echo "would restore $source_file ($tables tables) into ${DATABASE_URL%%\?*}" | sed -E 's#://[^@/]*@#://***@#'
  exit 0
fi

flags=(--no-owner --no-privileges --exit-on-error --single-transaction)
[ "$clean" = 1 ] && flags+=(--clean --if-exists)
"${bin}pg_restore" "${flags[@]}" --dbname="$DATABASE_URL" "$source_file"
echo "restored $source_file ($tables tables)"

# The ledger invariant of DESIGN §3, checked on what was restored.
broken="$("${bin}psql" "$DATABASE_URL" -Atqc "
  SELECT count(*) FROM user_credits uc
  WHERE uc.balance < 0
     OR uc.balance <> (SELECT COALESCE(sum(l.amount), 0) FROM credit_ledger l WHERE l.user_id = uc.user_id)")"
users="$("${bin}psql" "$DATABASE_URL" -Atqc 'SELECT count(*) FROM user_credits')"
if [ "$broken" != 0 ]; then
  echo "ledger check FAILED: $broken of $users balances differ from their ledger" >&2
  exit 3
fi
echo "ledger check ok: $users balances equal their ledger sums"
