#!/bin/sh
# The image's entry point: one argument names the role, the rest go to it. Each role runs the
# compiled JavaScript of the production build (infra/build.cjs, dist/), never tsx.
set -eu
APP_DIR="${DOTGIT_APP_DIR:-/app}"
role="${1:-}"
[ $# -gt 0 ] && shift
case "$role" in
  gateway)    entry=gateway/main.js ;;
  api)        entry=api/main.js ;;
  git-server) entry=git-server/main.js ;;
  worker)     entry=worker/main.js ;;
  migrate)    entry=infra/migrate.js ;;
  *)
    echo "usage: entrypoint.sh gateway|api|git-server|worker|migrate [args]   (got: '${role}')" >&2
    exit 2 ;;
esac
if [ ! -f "$APP_DIR/dist/$entry" ]; then
  echo "dotgit image: $APP_DIR/dist/$entry is missing: the image was built without 'node infra/build.cjs'" >&2
  exit 2
fi
exec node "$APP_DIR/dist/$entry" "$@"
