# Sourced by the project's scripts: makes sure a Node.js >= 22.22 is first on PATH.
# When the machine's node is older, Node 24 is installed once from the npm registry's `node`
# package into $BANKSTREAM_HOME/node24 (default ~/.bankstream/node24) and used from there.
bankstream_home="${BANKSTREAM_HOME:-$HOME/.bankstream}"

bankstream_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [M, m] = process.versions.node.split(".").map(Number); process.exit(M > 22 || (M === 22 && m >= 22) ? 0 : 1)'
}

if ! bankstream_node_ok; then
  if [ ! -x "$bankstream_home/node24/bin/node" ]; then
    echo "bankstream: node $(node --version 2>/dev/null || echo missing) is older than 22.22; installing Node 24 into $bankstream_home/node24" >&2
    npm install -g --no-fund --no-audit --prefix "$bankstream_home/node24" node@24 >&2 || {
      echo "bankstream: could not install Node 24 from the npm registry" >&2
      return 1 2>/dev/null || exit 1
    }
  fi
  export PATH="$bankstream_home/node24/bin:$PATH"
  bankstream_node_ok || { echo "bankstream: $bankstream_home/node24/bin/node does not run" >&2; return 1 2>/dev/null || exit 1; }
fi
