# need COMMAND [DEBIAN_PACKAGE]: makes sure COMMAND is on the PATH,
# installing the package with apt-get (as root, or through sudo) when it is
# missing, so that every bench script runs on a fresh machine. Source it.
need() {
	command -v "$1" >/dev/null && return 0
	local pkg=${2:-$1} sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "== installing $pkg (apt-get)"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null 2>&1; }
	command -v "$1" >/dev/null || { echo "bench: $1 is missing and apt-get could not install $pkg"; exit 1; }
}
