#!/usr/bin/env bash
# `dvc plots show` writes an HTML page that loads vega, vega-lite and vega-embed from a CDN: blank
# offline. This builds .dvc/plots/offline.html (named by .dvc/config's plots.html_template) with
# the versions DVC asks for inlined, from the npm registry. Idempotent; no {scripts} placeholder,
# so DVC's CDN tags are never inserted.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.dvc/plots/offline.html
[ -s "$out" ] && exit 0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 >/dev/null )
{
    echo '<!DOCTYPE html>'
    echo '<html><head>{refresh_tag}<meta charset="utf-8"><title>DVC plots</title>'
    for pkg in vega-5.20.2 vega-lite-5.2.0 vega-embed-6.18.2; do
        name=${pkg%-*}
        echo "<script type=\"text/javascript\">/* $pkg from the npm registry */"
        tar -xOzf "$tmp/$pkg.tgz" "package/build/$name.min.js"
        echo '</script>'
    done
    echo '<style>table { border-spacing: 15px; }</style></head>'
    echo '<body>{plot_divs}</body></html>'
} > "$tmp/offline.html"
mkdir -p "$(dirname "$out")"
mv "$tmp/offline.html" "$out"
