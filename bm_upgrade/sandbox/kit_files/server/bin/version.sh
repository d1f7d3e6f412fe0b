#!/bin/sh
# Prints the kit's version: Terracotta Enterprise <version>, as of <date> (Revision <rev> from <branch>)
. "$(cd "$(dirname "$0")" && pwd)/../lib/tc-env.sh"
props="$TC_LIB_DIR/tc-version.properties"
prop() { sed -n "s/^$1=//p" "$props"; }
echo "Terracotta Enterprise $(prop version), as of $(prop build.timestamp) (Revision $(prop build.revision) from $(prop build.branch))"
