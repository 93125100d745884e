#!/usr/bin/env bash
# Switchyard database backup: a pg_dump custom-format archive of $DATABASE_URL, checked by
# reading its table of contents back, then old archives pruned by age (never the newest).
#
#   scripts/backup.sh [--dir DIR] [--retention-days N] [--dry-run]
#   scripts/backup.sh --list [--dir DIR]
#
# DIR defaults to $BACKUP_DIR or ./backups; N to $BACKUP_RETENTION_DAYS or 14 (0 keeps all).
# pg_dump must be at least the server's major version (PG_BIN=/usr/lib/postgresql/17/bin to pick one).
set -euo pipefail

dir="${BACKUP_DIR:-./backups}"
retention_days="${BACKUP_RETENTION_DAYS:-14}"
dry_run=0
list=0

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --retention-days) retention_days="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --list) list=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "backup: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

if ! [[ "$retention_days" =~ ^[0-9]+$ ]]; then
  echo "backup: --retention-days must be a whole number of days" >&2; exit 2
fi

list_backups() {
  if [ ! -d "$dir" ] || [ -z "$(ls -A "$dir"/switchyard-*.dump 2>/dev/null)" ]; then
    echo "no backups in $dir"; return 0
  fi
  # newest first: name, size, age
  for f in $(ls -1t "$dir"/switchyard-*.dump); do
    printf '%s\t%s\t%s\n' "$(basename "$f")" "$(du -h "$f" | cut -f1)" "$(date -u -r "$f" +%Y-%m-%dT%H:%M:%SZ)"
  done
}

if [ "$list" = 1 ]; then list_backups; exit 0; fi

: "${DATABASE_URL:?backup: DATABASE_URL must name the database to back up}"
bin="${PG_BIN:+$PG_BIN/}"
file="$dir/switchyard-$(date -u +%Y%m%dT%H%M%SZ).dump"

prune_candidates() {
  [ "$retention_days" = 0 ] && return 0
  [ -d "$dir" ] || return 0
  local newest
  newest="$(ls -1t "$dir"/switchyard-*.dump 2>/dev/null | head -1)"
  find "$dir" -maxdepth 1 -name 'switchyard-*.dump' -mtime "+$((retention_days - 1))" -print | while read -r old; do
    [ "$old" != "$newest" ] && echo "$old"
  done
}

if [ "$dry_run" = 1 ]; then
  echo "would write $file (pg_dump --format=custom of ${DATABASE_URL%%\?*})" | sed -E 's#://[^@/]*@#://***@#'
  prune="$(prune_candidates)"
  if [ -n "$prune" ]; then echo "would delete (older than $retention_days days):"; echo "$prune" | sed 's/^/  /'; fi
  exit 0
fi

mkdir -p "$dir"
tmp="$file.partial"
trap 'rm -f "$tmp"' EXIT
"${bin}pg_dump" --format=custom --no-owner --no-privileges --file="$tmp" "$DATABASE_URL"
# An archive whose table of contents cannot be read is not a backup.
tables="$("${bin}pg_restore" --list "$tmp" | grep -c ' TABLE ' || true)"
mv "$tmp" "$file"
trap - EXIT
echo "wrote $file ($(du -h "$file" | cut -f1), $tables tables)"

prune_candidates | while read -r old; do
  rm -f "$old"
  echo "deleted $old (older than $retention_days days)"
done
