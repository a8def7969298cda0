# bash completion for poengine: options, subcommands (asked of the binary,
# so ones added through POENGINE_LUA_PATH appear too), each subcommand's
# options (read from its --help), and .lua files.
_poengine() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local cmd=${COMP_WORDS[1]}
  if ((COMP_CWORD == 1)); then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "-e -l -i -v --version -h --help --traceback --" -- "$cur"))
      return
    fi
    local subs
    subs=$("${COMP_WORDS[0]}" --help 2>/dev/null | awk '/^Subcommands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
    COMPREPLY=($(compgen -W "$subs" -- "$cur") $(compgen -f -X '!*.lua' -- "$cur") $(compgen -d -- "$cur"))
    return
  fi
  if [[ $cur == -* && $cmd != -* ]]; then
    local opts
    opts=$("${COMP_WORDS[0]}" "$cmd" --help 2>&1 | grep -oE -- '(^|[ [])--?[a-z][a-z-]*' | tr -d ' [' | sort -u)
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _poengine poengine
