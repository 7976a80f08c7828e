# Sourced by the hooks. Like dotgit-hook.cjs, they do no policy of their own: they gather what only
# a hook can see (the ref updates on stdin, the push options, the fast-forward check inside the
# push's quarantine), hand it to the git-server's internal API with curl (a few ms, where starting
# Node took ~130 ms per hook), print its messages and exit as it says (git-server/hook-wire.ts).

# dotgit_hook <hook> <state or ""> <gates: 1 or 0> — ref update lines on stdin.
dotgit_hook() {
  hook=$1 state=$2 gates=$3
  set --
  i=0
  while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ] && [ "$i" -lt 100 ]; do
    eval "option=\${GIT_PUSH_OPTION_$i}"
    set -- "$@" --data-urlencode "option=$option"
    i=$((i + 1))
  done
  [ -n "$state" ] && set -- "$@" --data-urlencode "state=$state"
  verb=record
  [ "$gates" = 1 ] && verb=check
  # The answer, then its status on a line of its own; the hook token goes in a header read from a
  # file descriptor, never on a command line other users of the host could list.
  answer=$(
    while read -r old new ref; do
      [ -n "$ref" ] || continue
      flag=
      if [ "$hook" = pre-receive ] && [ -n "${old##*[!0]*}" ] ; then :; # a new ref: no history to lose
      elif [ "$hook" = pre-receive ] && [ -n "${new##*[!0]*}" ]; then :; # a deletion
      elif [ "$hook" = pre-receive ]; then
        # Commits reachable from the old tip but not the new one: history was rewritten. Unknown
        # objects count as a rewrite, the safe side for protections.
        lost=$(git rev-list --max-count=1 "$old" "^$new" 2>/dev/null) || lost=unknown
        [ -n "$lost" ] && flag=' nff'
      fi
      printf '%s %s %s%s\n' "$old" "$new" "$ref" "$flag"
    done | curl --silent --show-error --max-time 60 -H @/dev/fd/3 --data-urlencode "updates@-" "$@" \
      --write-out '\n%{http_code}' "$DOTGIT_HOOK_URL/$hook" 3<<HEADER 2>&1
x-dotgit-service: $DOTGIT_HOOK_TOKEN
HEADER
  )
  status=${answer##*
}
  body=${answer%"
$status"}
  case "$status" in
    200 | 403) printf '%s' "$body" >&2 ;;
    000) printf 'dotgit: the server could not %s this push: %s\n' "$verb" "$(printf '%s' "$body" | head -n 1)" >&2 ;;
    *) printf 'dotgit: the server could not %s this push (%s)\n' "$verb" "$status" >&2 ;;
  esac
  [ "$status" = 200 ] && return 0
  [ "$gates" = 1 ] && return 1
  return 0
}
