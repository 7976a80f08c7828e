# Sourced by the hooks. They do no policy of their own: they gather what only a hook can see (the
# ref updates on stdin, the push options, the fast-forward check inside the push's quarantine),
# hand it to the git-server on the channel it gave receive-pack as fd 3 (git passes it on to its
# hooks), print its messages and exit as it says (git-server/hook-channel.ts, ADR 0047). No curl,
# no HTTP: a hook is this shell and, for pre-receive, one `git rev-list` per updated ref.

# dotgit_hook <hook> <state or ""> <gates: 1 or 0> — ref update lines on stdin.
dotgit_hook() {
  hook=$1 state=$2 gates=$3
  verb=record
  [ "$gates" = 1 ] && verb=check
  if [ "${DOTGIT_HOOK_FD:-}" != 3 ]; then
    printf 'dotgit: the server could not %s this push: no channel to the git-server\n' "$verb" >&2
    [ "$gates" = 1 ] && return 1
    return 0
  fi
  # The channel is line by line. git's client sends no newline in a push option, but receive-pack
  # passes on whatever a hand-made request holds: one with a newline would forge lines of its own.
  nl='
'
  options=
  i=0
  while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ] && [ "$i" -lt 100 ]; do
    eval "option=\${GIT_PUSH_OPTION_$i}"
    case $option in
      *"$nl"*)
        printf 'dotgit: push options may not contain a newline\n' >&2
        [ "$gates" = 1 ] && return 1
        return 0 ;;
    esac
    options="${options}option $option$nl"
    i=$((i + 1))
  done
  # A git-server gone mid-request must not kill the hook silently: the write fails, the read below
  # finds no answer, and the hook says so.
  trap '' PIPE
  {
    printf 'hook %s%s\n%s' "$hook" "${state:+ $state}" "$options"
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
      printf 'update %s %s %s%s\n' "$old" "$new" "$ref" "$flag"
    done
    printf 'end\n'
  } >&3 2>/dev/null
  verdict=
  while IFS= read -r line <&3; do
    case $line in
      'message '*) printf '%s\n' "${line#message }" >&2 ;;
      ok | deny) verdict=$line; break ;;
      'error '*) printf 'dotgit: the server could not %s this push (%s)\n' "$verb" "${line#error }" >&2; verdict=error; break ;;
    esac
  done
  [ -n "$verdict" ] || printf 'dotgit: the server could not %s this push: the git-server did not answer\n' "$verb" >&2
  [ "$verdict" = ok ] && return 0
  [ "$gates" = 1 ] && return 1
  return 0
}
